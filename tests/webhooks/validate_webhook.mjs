// Validates webhook requests with the npm `pusher` SDK: reads
// [{"headers": {...}, "body": "..."}] on stdin, prints [true|false, ...].
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "e2e", "package.json"));
const Pusher = require("pusher");

const pusher = new Pusher({
  appId: process.env.OVERTONE_APP_ID,
  key: process.env.OVERTONE_APP_KEY,
  secret: process.env.OVERTONE_APP_SECRET,
});
const requests = JSON.parse(readFileSync(0, "utf8"));
const verdicts = requests.map(({ headers, body }) => {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const webhook = pusher.webhook({ headers: lower, rawBody: body });
  return webhook.isValid() && webhook.getEvents().length > 0;
});
process.stdout.write(JSON.stringify(verdicts));
