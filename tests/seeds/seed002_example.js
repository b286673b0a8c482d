// Seed 002's Node.js example, as the document gives it (its indentation was lost there).
const https = require("https");
const { URL } = require("url");
// Replace <YOUR_AIMLAPI_KEY> with your actual AI/ML API key
const apiKey = "<YOUR_AIMLAPI_KEY>";
const baseUrl = "https://api.aimlapi.com/v2";
// Creating and sending a video generation task to the server
function generateVideo(callback) {
const data = JSON.stringify({
model: "google/veo-3.0-i2v-fast",
prompt: "The woman puts on glasses with her hands and then sighs and says slowly: 'Well...'.",
image_url: "https://s2-111386.kwimgs.com/bs2/mmu-aiplatform-temp/kling/20240620/1.jpeg",
duration: "5",
});
const url = new URL(`${baseUrl}/generate/video/google/generation`);
const options = {
method: "POST",
headers: {
"Authorization": `Bearer ${apiKey}`,
"Content-Type": "application/json",
"Content-Length": Buffer.byteLength(data),
},
};
const req = https.request(url, options, (res) => {
let body = "";
res.on("data", (chunk) => body += chunk);
res.on("end", () => {
if (res.statusCode >= 400) {
console.error(`Error: ${res.statusCode} - ${body}`);
callback(null);
} else {
const parsed = JSON.parse(body);
callback(parsed);
}
});
});
req.on("error", (err) => console.error("Request error:", err));
req.write(data);
req.end();
}
// Requesting the result of the task from the server using the generation_id
function getVideo(genId, callback) {
const url = new URL(`${baseUrl}/generate/video/google/generation`);
url.searchParams.append("generation_id", genId);
const options = {
method: "GET",
headers: {
"Authorization": `Bearer ${apiKey}`,
"Content-Type": "application/json",
},
};
const req = https.request(url, options, (res) => {
let body = "";
res.on("data", (chunk) => body += chunk);
res.on("end", () => {
const parsed = JSON.parse(body);
callback(parsed);
});
});
req.on("error", (err) => console.error("Request error:", err));
req.end();
}
// Initiates video generation and checks the status every 10 s until completion or timeout
function main() {
generateVideo((genResponse) => {
if (!genResponse || !genResponse.id) {
console.error("Failed to start generation");
return;
}
const genId = genResponse.id;
console.log("Generation ID:", genId);
const startTime = Date.now();
const timeout = 600000;
const checkStatus = () => {
if (Date.now() - startTime > timeout) {
console.log("Timeout reached. Stopping.");
return;
}
getVideo(genId, (responseData) => {
if (!responseData) {
console.error("Error: No response from API");
return;
}
const status = responseData.status;
console.log("Status:", status);
if (["waiting", "active", "queued", "generating"].includes(status)) {
console.log("Still waiting... Checking again in 10 seconds.");
setTimeout(checkStatus, 10000);
} else {
console.log("Processing complete:\n", responseData);
}
});
};
checkStatus();
});
}
main();
