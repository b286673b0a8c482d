// Google's JS SDK (@google/genai 3.x) making video with Gemini Omni through the
// Interactions API, in its default API-key mode, unchanged but for its base URL and key.
//   node genai3_interactions.cjs BASE_URL KEY MODEL IMAGE_PNG OUT_DIR
// Makes an image-to-video and a text-to-video interaction (input as the flat list of
// content items the JS SDK sends), polls them with a sleep, refines the first with
// previous_interaction_id, streams the refinement's events, cancels one more and deletes
// it. Writes the videos to OUT_DIR and prints one JSON line of what it saw.
const fs = require("fs");
const path = require("path");
const { GoogleGenAI } = require("@google/genai");

const DONE = ["completed", "failed", "cancelled", "incomplete"];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function wait(ai, id) {
  const deadline = Date.now() + 180000;
  let interaction = await ai.interactions.get(id);
  while (!DONE.includes(interaction.status)) {
    if (Date.now() > deadline) throw new Error(`interaction ${id} did not finish`);
    await sleep(500);
    interaction = await ai.interactions.get(id);
  }
  return interaction;
}

function save(interaction, file) {
  const video = interaction.output_video;
  if (!video || !video.data) throw new Error(`no video in ${JSON.stringify(interaction)}`);
  fs.writeFileSync(file, Buffer.from(video.data, "base64"));
}

async function main() {
  const [baseUrl, key, model, imagePath, outDir] = process.argv.slice(2);
  const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl } });
  const image = fs.readFileSync(imagePath).toString("base64");
  const format = { type: "video", aspect_ratio: "9:16", resolution: "360p", duration: "3" };

  const fromImage = await ai.interactions.create({
    model,
    background: true,
    input: [
      { type: "text", text: "a slow push-in on the scene" },
      { type: "image", data: image, mime_type: "image/png" },
    ],
    response_format: format,
  });
  const fromText = await ai.interactions.create({
    model,
    background: true,
    input: "a lighthouse at dusk, waves below",
    response_format: format,
    generation_config: { video_config: { task: "text_to_video" } },
  });
  const first = await wait(ai, fromImage.id);
  const second = await wait(ai, fromText.id);
  save(first, path.join(outDir, "image.mp4"));
  save(second, path.join(outDir, "text.mp4"));

  const refined = await ai.interactions.create({
    model,
    background: true,
    input: [{ type: "text", text: "the same scene, now at night" }],
    previous_interaction_id: first.id,
    response_format: format,
  });
  const events = [];
  for await (const event of await ai.interactions.get(refined.id, { stream: true })) {
    events.push(event.event_type);
  }
  const third = await wait(ai, refined.id);
  save(third, path.join(outDir, "refined.mp4"));

  const doomed = await ai.interactions.create({
    model,
    background: true,
    input: "a long slow pan over mountains",
    response_format: { ...format, duration: "15" },
  });
  const cancelAnswer = await ai.interactions.cancel(doomed.id);
  const ended = await wait(ai, doomed.id);
  await ai.interactions.delete(doomed.id);
  let deleted = false;
  try {
    await ai.interactions.get(doomed.id);
  } catch (error) {
    deleted = String(error).includes("404") || String(error.status) === "404";
  }
  console.log(
    JSON.stringify({
      ids: [first.id, second.id, third.id],
      statuses: [first.status, second.status, third.status],
      refined_from: third.previous_interaction_id,
      events,
      cancel_answer: cancelAnswer.status,
      cancelled: ended.status,
      deleted,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
