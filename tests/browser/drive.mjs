// Opens a page in Debian's headless chromium and prints what the page found, as JSON.
// Usage: node drive.mjs <page URL>. Exit 0 once the page reported, whatever it found: the
// Rust test reads the JSON and decides.
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(m.text()));
  await page.goto(url);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 20_000 });
  const result = await page.evaluate(() => window.__result);
  result.console = console_;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
