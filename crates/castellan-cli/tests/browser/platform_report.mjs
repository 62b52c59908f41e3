// Opens a `castellan report --html` page in Debian's Chromium, takes a
// screenshot, and prints what a reader sees as JSON on stdout: the stage
// line, the ladder (text and whether each step is marked reached), the
// findings by id, and the services table.
//
//   node platform_report.mjs <report.html> <screenshot.png>
//
// Driven by crates/castellan-cli/tests/probe.rs.

import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

const [report, shot] = process.argv.slice(2);
if (!report || !shot) {
  console.error('usage: node platform_report.mjs <report.html> <screenshot.png>');
  process.exit(64);
}
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  await page.goto(pathToFileURL(report).href);
  await page.screenshot({ path: shot, fullPage: true });
  const seen = await page.evaluate(() => ({
    title: document.title,
    stage: document.querySelector('#stage').innerText,
    ladder: [...document.querySelectorAll('#ladder li')].map((li) => ({
      text: li.innerText.trim(),
      reached: li.classList.contains('reached'),
      background: getComputedStyle(li).backgroundColor,
    })),
    findings: [...document.querySelectorAll('section[data-finding]')].map((s) => ({
      id: s.dataset.finding,
      title: s.querySelector('h3').innerText,
      evidence: [...s.querySelectorAll('li')].map((li) => li.innerText),
    })),
    services: [...document.querySelectorAll('#services tbody tr')].map((tr) =>
      [...tr.querySelectorAll('td')].map((td) => td.innerText.trim())),
  }));
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
