// Google's own JS SDK (@google/genai 3.x) in Vertex AI mode, unchanged but for its base
// URL and key.
//   node genai3_vertex.cjs express|project BASE_URL KEY MODEL IMAGE_PNG OUT_MP4
// Prints one JSON line: the operation name and the video's size.
const fs = require("fs");
const { GoogleGenAI } = require("@google/genai");
const { OAuth2Client } = require("google-auth-library");

function client(mode, baseUrl, key) {
  const httpOptions = { baseUrl };
  if (mode === "express") {
    return new GoogleGenAI({ vertexai: true, apiKey: key, httpOptions });
  }
  // Project mode takes an OAuth client; its access token is the kinema key.
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: key, expiry_date: Date.now() + 3600 * 1000 });
  return new GoogleGenAI({
    vertexai: true,
    project: "my-project",
    location: "us-central1",
    googleAuthOptions: { authClient },
    httpOptions,
  });
}

async function main() {
  const [mode, baseUrl, key, model, imagePath, out] = process.argv.slice(2);
  const ai = client(mode, baseUrl, key);
  let operation = await ai.models.generateVideos({
    model,
    prompt: "a slow push-in on the scene",
    image: { imageBytes: fs.readFileSync(imagePath).toString("base64"), mimeType: "image/png" },
    config: { numberOfVideos: 1, durationSeconds: 4, resolution: "720p", aspectRatio: "16:9" },
  });
  const firstName = operation.name;
  const deadline = Date.now() + 180000;
  while (!operation.done) {
    if (Date.now() > deadline) throw new Error("the operation did not finish");
    await new Promise((resolve) => setTimeout(resolve, 500));
    operation = await ai.operations.getVideosOperation({ operation });
  }
  if (operation.error) throw new Error(`operation failed: ${JSON.stringify(operation.error)}`);
  const video = operation.response.generatedVideos[0].video;
  fs.writeFileSync(out, Buffer.from(video.videoBytes, "base64"));
  console.log(JSON.stringify({ name: firstName, mime_type: video.mimeType, bytes: fs.statSync(out).size }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
