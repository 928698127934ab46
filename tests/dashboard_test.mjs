// The dashboard in headless Chromium (driven by npm's playwright-core),
// against the real federation tests/dashboard_test.sh started: picks a
// question in the page, asks it, and checks the chart against the CLI's
// JSON answer to the same question, the withheld cell and its rule, the
// stopped partner in the coverage panel, the downloads and the saved answer;
// and that requests without the token (or naming another host) get 403.
//
//   node dashboard_test.mjs   (settings in the environment, see `env` below)
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const npmDir = env('DASHBOARD_NPM_DIR');        // holds node_modules/playwright-core
const url = new URL(env('DASHBOARD_URL'));      // as `fedshare dashboard` printed it
const fedshare = env('FEDSHARE');               // the CLI binary
const node = env('FOUNDATION_LOCAL');
const identity = env('ANALYST');
const historyDir = env('HISTORY_DIR');
const screenshot = env('SCREENSHOT');
const stopped = env('STOPPED_PARTNER');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

const { chromium } = createRequire(`${npmDir}/package.json`)('playwright-core');

let passed = 0;
let failed = 0;
function check(ok, what, detail = '') {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.error(`FAIL: ${what}${detail ? `\n  ${detail}` : ''}`);
  }
}

// One raw request, so the Host header can be set too.
function request(path, { headers = {}, method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: url.port, path, method, headers }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
}

const token = url.searchParams.get('token');
const wrong = token.replace(/^./, (c) => (c === '0' ? '1' : '0'));

// ---- The token ------------------------------------------------------------
for (const path of ['/', '/index.html', '/app.js', '/d3.min.js', '/api/describe', '/api/history']) {
  const r = await request(path);
  check(r.status === 403, `GET ${path} without the token is refused`, `status ${r.status}`);
}
for (const [what, options] of [
  ['a wrong token in the URL', { path: `/?token=${wrong}` }],
  ['a wrong token in the header', { path: '/api/describe', headers: { 'X-Fedshare-Token': wrong } }],
  ['a wrong token in the cookie', { path: '/app.js', headers: { Cookie: `fedshare_dashboard_${url.port}=${wrong}` } }],
  ['the right token for /api/ in a cookie only', { path: '/api/describe', headers: { Cookie: `fedshare_dashboard_${url.port}=${token}` } }],
  ['the right token but another Host', { path: `/?token=${token}`, headers: { Host: `evil.example:${url.port}` } }],
  ['a POST of a question without the token',
    { path: '/api/query', method: 'POST', body: '{"sql":"x"}', headers: { 'Content-Length': '11' } }],
]) {
  const r = await request(options.path, options);
  check(r.status === 403, `${what} is refused`, `status ${r.status}`);
}
const good = await request(`/?token=${token}`);
check(good.status === 200 && good.body.includes('fedshare dashboard'), 'the page with its token is served');

// ---- The page ---------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  // As root (this test's sandbox) Chromium's own sandbox cannot start.
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1100 }, acceptDownloads: true });
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
try {
  await page.goto(url.href);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30000 });

  // Pick the question: no typing, only what describe offered.
  await page.selectOption('#dataset', 'program_outcomes');
  await page.selectOption('#purpose', 'program-evaluation');
  await page.check('#group-options input[value="program"]');
  await page.selectOption('#measure-rows .measure-row .aggregate', 'COUNT');
  await page.click('#add-measure');
  const second = page.locator('#measure-rows .measure-row').nth(1);
  await second.locator('.aggregate').selectOption('AVG');
  await second.locator('.measure').selectOption('outcome_score');
  await page.click('#add-filter');
  await page.click('#add-filter');
  const f1 = page.locator('#filter-rows .filter-row').nth(0);
  await f1.locator('.filter-field').selectOption('cohort_year');
  await f1.locator('.op').selectOption('EQ');
  await f1.locator('.value').fill('2023');
  const f2 = page.locator('#filter-rows .filter-row').nth(1);
  await f2.locator('.filter-field').selectOption('region');
  await f2.locator('.value').selectOption('central');
  await page.click('#run');
  await page.waitForSelector('#chart svg .point', { timeout: 60000 });

  const sql = (await page.textContent('#question-sql')).trim();
  check(sql === "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes WHERE cohort_year = 2023 AND region = 'central' GROUP BY program PURPOSE 'program-evaluation'",
    'the picked question reads as the intended SQL', sql);

  // The CLI's answer to the same question.
  const cliText = execFileSync(fedshare, ['--node', node, '--identity', identity, 'query',
    '--all-peers', '--min-coverage', '0', '--output', 'json', '--sql', sql], { encoding: 'utf8' });
  const cli = JSON.parse(cliText);
  const key = (c) => c.key.map((k) => Object.values(k)[0]).map(String).join(' · ');

  for (const column of [0, 1]) {
    await page.selectOption('#column', String(column));
    const shown = await page.$$eval('#chart svg .point', (nodes) => nodes.map((n) => ({
      label: n.getAttribute('data-label'),
      value: n.getAttribute('data-value'),
      partial: n.getAttribute('data-partial') === 'true',
      withheld: n.getAttribute('data-withheld') === 'true',
      rule: n.getAttribute('data-rule'),
    })));
    const expected = cli.combined.cells.map((c) => (c.withheld
      ? { label: key(c), value: '', partial: !!c.partial, withheld: true, rule: c.withheld_rule }
      : { label: key(c), value: String(c.values[column].value), partial: !!c.partial, withheld: false, rule: '' }));
    const sort = (a) => [...a].sort((x, y) => x.label.localeCompare(y.label));
    check(JSON.stringify(sort(shown)) === JSON.stringify(sort(expected)),
      `chart points of column ${cli.combined.columns[1 + column]} equal the CLI's JSON answer`,
      `chart ${JSON.stringify(sort(shown))}\n  cli   ${JSON.stringify(sort(expected))}`);
    check(expected.some((p) => p.partial) && expected.some((p) => !p.partial && !p.withheld),
      `column ${column}: the answer has partial and complete cells to compare`);
  }
  await page.selectOption('#column', '0');
  await page.selectOption('#kind', 'line');
  const linePoints = await page.$$eval('#chart svg circle.point', (n) => n.map((c) => c.getAttribute('data-value')));
  check(JSON.stringify(linePoints.map(Number).sort()) ===
    JSON.stringify(cli.combined.cells.filter((c) => !c.withheld).map((c) => c.values[0].value).sort()),
    'the line chart has the same points', JSON.stringify(linePoints));
  await page.selectOption('#kind', 'bar');

  // A withheld cell is shown as withheld, with its rule.
  const withheldCells = cli.combined.cells.filter((c) => c.withheld);
  check(withheldCells.length > 0, 'the CLI answer has a withheld cell', JSON.stringify(cli.combined.cells.map(key)));
  for (const c of withheldCells) {
    const slot = page.locator(`#chart svg .point.withheld[data-label="${key(c)}"]`);
    check(await slot.count() === 1 && await slot.getAttribute('data-rule') === c.withheld_rule,
      `the chart marks ${key(c)} as withheld by ${c.withheld_rule}`);
    const chartText = await page.textContent('#chart svg');
    check(chartText.includes(`withheld (${c.withheld_rule})`), `the chart labels ${key(c)} withheld (${c.withheld_rule})`);
    const li = page.locator(`#withheld li.withheld-cell[data-label="${key(c)}"]`);
    check(await li.count() === 1 && (await li.textContent()).includes(c.withheld_rule),
      `the withheld panel explains ${key(c)} with its rule`);
  }
  for (const w of cli.combined.withholdings) {
    const text = await page.textContent(`#withheld li.withholding[data-rule="${w.rule}"]`);
    check(text.includes(w.reason), `the withheld panel gives the reason of rule ${w.rule}`, text);
  }

  // The stopped partner is in the coverage panel.
  const row = page.locator(`#coverage tr[data-org="${stopped}"]`);
  const state = await row.getAttribute('data-state');
  check(state === 'UNREACHABLE' || state === 'TIMED_OUT', `${stopped} is shown as not answering`, state);
  check((await row.textContent()).includes(state.toLowerCase().replace('_', ' ')), `${stopped}'s row says ${state}`);
  const cov = cli.coverage.filter((c) => c.state === 'ANSWERED').length;
  check((await page.textContent('#coverage-summary')).includes(`${cov} of ${cli.coverage.length} partners answered`),
    'the coverage summary matches the CLI');

  // Receipts.
  const receipts = await page.textContent('#receipts');
  check(receipts.includes('foundation') && receipts.includes('partner-south'), 'receipts list the combining node and partners');

  // Downloads: the table as CSV, the chart as SVG.
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
  const csvText = readFileSync(await csv.path(), 'utf8');
  check(csvText.includes('program,count,avg(outcome_score),withheld,partial,partners') &&
    csvText.includes(`# ${stopped}: `), 'the CSV download has the table and the coverage', csvText);
  const [svg] = await Promise.all([page.waitForEvent('download'), page.click('#download-svg')]);
  const svgText = readFileSync(await svg.path(), 'utf8');
  check(svgText.includes('<svg') && svgText.includes('xmlns="http://www.w3.org/2000/svg"') &&
    svgText.includes('withheld ('), 'the SVG download is the chart');

  // The answer is saved as the CLI's JSON document, and listed in the history.
  const saved = readdirSync(historyDir).filter((f) => f.endsWith('.json'));
  check(saved.length === 1, 'one answer saved in the history folder', saved.join(' '));
  const doc = JSON.parse(readFileSync(`${historyDir}/${saved[0]}`, 'utf8'));
  // As `fedshare query --save` writes it (saved_answer.proto): the question,
  // and under "federated" the `fedshare query --output json` document.
  check(doc.format === 'fedshare.saved-answer.v1' && doc.sql === sql && doc.node === node &&
    JSON.stringify(doc.question.group_by) === '["program"]' && /^\d{4}-\d\d-\d\dT/.test(doc.saved_at),
    'the saved answer holds its question', JSON.stringify({ ...doc, federated: undefined }));
  check(JSON.stringify(Object.keys(doc.federated)) === JSON.stringify(Object.keys(cli)) &&
    JSON.stringify(doc.federated.combined.cells) === JSON.stringify(cli.combined.cells) &&
    JSON.stringify(doc.federated.coverage.map((c) => c.state)) === JSON.stringify(cli.coverage.map((c) => c.state)),
    'the saved answer is the CLI JSON document with the same cells and coverage');
  check((await page.textContent('#history')).includes(sql), 'the history lists the question');
  // Shown again from the saved file: the same chart.
  const before = await page.$$eval('#chart svg .point', (n) => n.map((p) => p.outerHTML));
  await page.click('#history button');
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved answer'));
  const after = await page.$$eval('#chart svg .point', (n) => n.map((p) => p.outerHTML));
  check(JSON.stringify(before) === JSON.stringify(after), 'the saved answer shows the same chart again');

  // Differentially private answers carry 95% intervals (AggregateValue.noise):
  // the same answer with intervals added gets a whisker per released cell.
  const noisy = JSON.parse(JSON.stringify(cli));
  for (const c of noisy.combined.cells) {
    for (const v of c.values) v.noise = { ci_low: v.value - 1, ci_high: v.value + 1 };
  }
  noisy.combined.privacy_budget = { epsilon_spent: 0.5, epsilon_left: 2.5, epsilon_budget: 3, repeat: false };
  await page.evaluate((a) => showAnswer({ answer: a, sql: 'x', question: null }), noisy);
  const whiskers = await page.locator('#chart svg g.interval').count();
  check(whiskers === noisy.combined.cells.filter((c) => !c.withheld).length, 'intervals are drawn where the answer has them', String(whiskers));
  check((await page.textContent('#budget')).includes('2.5 of 3 left'), 'the privacy budget is shown');
  await page.evaluate(([a, s]) => showAnswer({ answer: a, sql: s, question: null }), [cli, sql]);
  check(await page.locator('#chart svg g.interval').count() === 0 && await page.locator('#budget').isHidden(),
    'exact answers have no intervals and no budget line');

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  // DOCS_PICTURE=docs/dashboard.png remakes the documentation's picture:
  // the same page, narrower and at 3/4 scale, to keep the file small.
  if (process.env.DOCS_PICTURE) {
    const small = await browser.newPage({ viewport: { width: 1200, height: 900 }, deviceScaleFactor: 0.75 });
    await small.context().addCookies(await page.context().cookies());
    await small.goto(url.href);
    await small.waitForSelector('#history button');
    await small.click('#history button');
    await small.waitForSelector('#chart svg .point');
    await small.screenshot({ path: process.env.DOCS_PICTURE, fullPage: true });
  }
  check(consoleErrors.length === 0, 'no errors in the page', consoleErrors.join('\n  '));
} finally {
  await browser.close();
}
console.log(`dashboard test: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
