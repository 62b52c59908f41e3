// Opens a `castellan probe --html` report in Debian's Chromium, takes a
// screenshot, and prints what a reader sees as JSON on stdout: the summary
// line, and for every target the text of every matrix cell by check id.
//
//   node probe_report.mjs <report.html> <screenshot.png>
//
// Driven by crates/castellan-cli/tests/probe.rs.

import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

const [report, shot] = process.argv.slice(2);
if (!report || !shot) {
  console.error('usage: node probe_report.mjs <report.html> <screenshot.png>');
  process.exit(64);
}
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  await page.goto(pathToFileURL(report).href);
  await page.screenshot({ path: shot, fullPage: true });
  const seen = await page.evaluate(() => {
    const cells = {};
    for (const row of document.querySelectorAll('#matrix tbody tr')) {
      const t = {};
      for (const td of row.querySelectorAll('td[data-check]')) {
        t[td.dataset.check] = { text: td.innerText.trim(), background: getComputedStyle(td).backgroundColor };
      }
      cells[row.dataset.target] = t;
    }
    const sections = [...document.querySelectorAll('section[data-target]')].map((s) => s.dataset.target);
    return { summary: document.querySelector('#summary').innerText, cells, sections, title: document.title };
  });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
