// The fedshare dashboard page. It talks only to the `fedshare dashboard`
// process that served it (which holds the identity and calls the node); the
// one-time token from the URL goes with every call.
'use strict';

const token = new URLSearchParams(location.search).get('token') || '';
const $ = (id) => document.getElementById(id);

const AGGREGATE_SQL = {
  COUNT: () => 'COUNT(*)',
  COUNT_SUBJECTS: () => 'COUNT(DISTINCT subject)',
  SUM: (f) => `SUM(${f})`,
  AVG: (f) => `AVG(${f})`,
  STDDEV: (f) => `STDDEV(${f})`,
  VARIANCE: (f) => `VARIANCE(${f})`,
  HISTOGRAM: (f) => `HISTOGRAM(${f})`,
};
const NEEDS_FIELD = new Set(['SUM', 'AVG', 'STDDEV', 'VARIANCE', 'HISTOGRAM']);
const OPS = [['EQ', '='], ['NE', '≠'], ['LT', '<'], ['LE', '≤'], ['GT', '>'], ['GE', '≥']];

const state = {
  peers: [],       // [{org_id, address, describe?, error?}]
  datasets: {},    // name -> {fields: {name: FieldSchema}, offers: [{org, agreement}]}
  answer: null,    // the last FederatedAggregateResponse
  question: null,  // its AggregateQuery
  sql: '',
};

async function api(path, body) {
  const init = { headers: { 'X-Fedshare-Token': token } };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data;
  try {
    data = await response.json();
  } catch (e) {
    throw new Error(`${response.status} ${response.statusText}`);
  }
  if (!response.ok || data.error) {
    const e = data.error || { message: response.statusText };
    const parts = [`${e.code || response.status}: ${e.message}`];
    if (e.rule) parts.push(`rule ${e.rule}`);
    if (e.agreement) parts.push(`agreement ${e.agreement}`);
    if (e.field) parts.push(`field ${e.field}`);
    if (e.retry_after_seconds) parts.push(`ask again in ${e.retry_after_seconds} s`);
    throw new Error(parts.join('\n'));
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'className') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function option(value, label, selected = false) {
  const o = el('option', { value, text: label ?? value });
  if (selected) o.selected = true;
  return o;
}

// ---- What the partners allow ------------------------------------------------

function collectOffers() {
  state.datasets = {};
  for (const peer of state.peers) {
    if (!peer.describe) continue;
    for (const offer of peer.describe.datasets || []) {
      const name = offer.schema.name;
      const d = state.datasets[name] || (state.datasets[name] = { fields: {}, offers: [] });
      for (const f of offer.schema.fields || []) d.fields[f.name] = f;
      for (const a of offer.agreements || []) d.offers.push({ org: peer.org_id, agreement: a });
    }
  }
}

// Offers of the chosen dataset whose agreement covers the chosen purpose.
function offersFor(dataset, purpose) {
  const d = state.datasets[dataset];
  if (!d) return [];
  return d.offers.filter((o) => !purpose || (o.agreement.purposes || []).includes(purpose));
}

// name -> number of partners allowing it, over `offers`' lists `key`.
function allowed(offers, key) {
  const counts = new Map();
  const orgsSeen = new Map();
  for (const o of offers) {
    for (const v of o.agreement[key] || []) {
      const seen = orgsSeen.get(v) || new Set();
      if (!seen.has(o.org)) {
        seen.add(o.org);
        counts.set(v, (counts.get(v) || 0) + 1);
      }
      orgsSeen.set(v, seen);
    }
  }
  return counts;
}

// Partners that said what they allow (a partner that is down says nothing).
function partnerCount() {
  return state.peers.filter((p) => p.describe).length;
}

function withCount(name, n) {
  return n < partnerCount() ? `${name} (${n} of ${partnerCount()} partners)` : name;
}

function fillDatasets() {
  const select = $('dataset');
  select.replaceChildren(...Object.keys(state.datasets).map((n) => option(n)));
  fillPurposes();
}

function fillPurposes() {
  const offers = offersFor($('dataset').value);
  const purposes = allowed(offers, 'purposes');
  $('purpose').replaceChildren(...[...purposes].map(([p, n]) => option(p, withCount(p, n))));
  fillChoices();
}

function fillChoices() {
  const offers = offersFor($('dataset').value, $('purpose').value);
  const groups = allowed(offers, 'group_fields');
  $('group-options').replaceChildren(
    ...[...groups].map(([g, n]) =>
      el('label', {}, el('input', { type: 'checkbox', value: g, name: 'group' }), withCount(g, n))),
  );
  $('measure-rows').replaceChildren();
  addMeasureRow('COUNT');
  $('filter-rows').replaceChildren();
}

function addMeasureRow(kind) {
  const offers = offersFor($('dataset').value, $('purpose').value);
  const aggregates = allowed(offers, 'aggregates');
  const measures = allowed(offers, 'measure_fields');
  const kindSelect = el('select', { className: 'aggregate' },
    ...[...aggregates].map(([a, n]) => option(a, withCount(a, n), a === kind)));
  const fieldSelect = el('select', { className: 'measure' },
    ...[...measures].map(([m, n]) => option(m, withCount(m, n))));
  const remove = el('button', { type: 'button', text: '×', title: 'remove this figure' });
  const row = el('div', { className: 'measure-row' }, kindSelect, fieldSelect, remove);
  const sync = () => { fieldSelect.hidden = !NEEDS_FIELD.has(kindSelect.value); };
  kindSelect.addEventListener('change', sync);
  remove.addEventListener('click', () => row.remove());
  sync();
  $('measure-rows').append(row);
}

function valueInput(field) {
  if (field && field.type === 'BOOL') {
    return el('select', { className: 'value' }, option('true'), option('false'));
  }
  if (field && (field.categories || []).length > 0) {
    return el('select', { className: 'value' }, ...field.categories.map((c) => option(c)));
  }
  const type = field && (field.type === 'INT64' || field.type === 'DOUBLE') ? 'number' : 'text';
  return el('input', { className: 'value', type, size: 10 });
}

function addFilterRow() {
  const d = state.datasets[$('dataset').value];
  const offers = offersFor($('dataset').value, $('purpose').value);
  const fields = allowed(offers, 'filter_fields');
  const fieldSelect = el('select', { className: 'filter-field' },
    ...[...fields].map(([f, n]) => option(f, withCount(f, n))));
  const opSelect = el('select', { className: 'op' }, ...OPS.map(([op, label]) => option(op, label)));
  let value = valueInput(d.fields[fieldSelect.value]);
  const remove = el('button', { type: 'button', text: '×', title: 'remove this condition' });
  const row = el('div', { className: 'filter-row' }, fieldSelect, opSelect, value, remove);
  fieldSelect.addEventListener('change', () => {
    const next = valueInput(d.fields[fieldSelect.value]);
    value.replaceWith(next);
    value = next;
  });
  remove.addEventListener('click', () => row.remove());
  $('filter-rows').append(row);
}

function fillPartners() {
  $('partner-options').replaceChildren(...state.peers.map((p) => {
    const box = el('input', { type: 'checkbox', value: p.org_id, name: 'partner' });
    box.checked = true;
    const note = p.error ? ' (not answering now)' : '';
    return el('label', { title: p.error || p.address }, box, p.org_id + note);
  }));
}

// ---- Asking -----------------------------------------------------------------

function pickedQuestion() {
  const dataset = $('dataset').value;
  const fields = state.datasets[dataset].fields;
  const query = {
    dataset,
    purpose: $('purpose').value,
    group_by: [...document.querySelectorAll('#group-options input:checked')].map((i) => i.value),
    aggregates: [],
    where: [],
  };
  for (const row of document.querySelectorAll('#measure-rows .measure-row')) {
    const kind = row.querySelector('.aggregate').value;
    const a = { kind };
    if (NEEDS_FIELD.has(kind)) a.field = row.querySelector('.measure').value;
    if (kind === 'HISTOGRAM') {
      const f = fields[a.field] || {};
      a.lo = f.lower ?? 0;
      a.hi = f.upper ?? 100;
      a.bins = 10;
    }
    query.aggregates.push(a);
  }
  for (const row of document.querySelectorAll('#filter-rows .filter-row')) {
    const name = row.querySelector('.filter-field').value;
    const text = row.querySelector('.value').value;
    const f = fields[name] || {};
    let value;
    if (f.type === 'BOOL') value = { bool_value: text === 'true' };
    else if (f.type === 'INT64') value = { int_value: String(Math.trunc(Number(text))) };
    else if (f.type === 'DOUBLE') value = { double_value: Number(text) };
    else value = { string_value: text };
    query.where.push({ field: name, op: row.querySelector('.op').value, values: [value] });
  }
  return query;
}

function pickedPartners() {
  const boxes = [...document.querySelectorAll('#partner-options input')];
  const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
  return chosen.length === boxes.length ? [] : chosen;
}

async function ask(body) {
  $('error').hidden = true;
  $('status').textContent = 'asking…';
  $('run').disabled = $('run-sql').disabled = true;
  try {
    const r = await api('/api/query', { ...body, peers: pickedPartners() });
    showAnswer(r);
    $('sql').value = r.sql;
    $('status').textContent = r.saved ? `answer saved as ${r.saved.file}` : 'answered (not saved)';
    loadHistory();
  } catch (e) {
    $('error').textContent = e.message;
    $('error').hidden = false;
    $('status').textContent = 'not answered';
  } finally {
    $('run').disabled = $('run-sql').disabled = false;
  }
}

// ---- Showing an answer --------------------------------------------------------

function keyText(v) {
  if (v === undefined || v === null) return '';
  if ('string_value' in v) return v.string_value;
  if ('int_value' in v) return String(v.int_value);
  if ('double_value' in v) return String(v.double_value);
  if ('bool_value' in v) return String(v.bool_value);
  return '';
}

function cellLabel(cell) {
  return (cell.key || []).length ? cell.key.map(keyText).join(' · ') : 'all records';
}

// The 95% interval of a differentially private figure (AggregateValue.noise,
// or bin_noise[bin] for a histogram bin); null for exact figures.
function intervalOf(v, bin) {
  const n = bin === undefined ? v.noise : (v.bin_noise || [])[bin];
  if (n && typeof n.ci_low === 'number' && typeof n.ci_high === 'number' && n.ci_high > n.ci_low) {
    return [n.ci_low, n.ci_high];
  }
  return null;
}

function numberText(x) {
  return Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) < 1 ? 4 : 2);
}

function aggregateCount(result) {
  const cell = (result.cells || []).find((c) => (c.values || []).length > 0);
  if (cell) return cell.values.length;
  return state.question ? state.question.aggregates.length : 0;
}

// The chart's points for answer column `column` (an aggregate's index).
function points(result, column) {
  const out = [];
  const agg = state.question && state.question.aggregates[column];
  for (const cell of result.cells || []) {
    const label = cellLabel(cell);
    const base = { partial: !!cell.partial, partners: cell.partners || 0 };
    if (cell.withheld) {
      out.push({ ...base, label, withheld: true, rule: cell.withheld_rule });
      continue;
    }
    const v = cell.values[column];
    if (agg && agg.kind === 'HISTOGRAM') {
      const width = (agg.hi - agg.lo) / agg.bins;
      const withheld = new Set(v.withheld_bins || []);
      v.bins.forEach((count, i) => {
        const lo = agg.lo + i * width;
        const binLabel = `${label} [${numberText(lo)}, ${numberText(lo + width)})`;
        if (withheld.has(i)) out.push({ ...base, label: binLabel, withheld: true, rule: 'histogram-bin' });
        else out.push({ ...base, label: binLabel, value: count, interval: intervalOf(v, i) });
      });
      continue;
    }
    out.push({ ...base, label, value: v.value, interval: intervalOf(v) });
  }
  return out;
}

function drawChart() {
  const result = state.answer.combined;
  const column = Number($('column').value || 0);
  const data = points(result, column);
  const kind = $('kind').value;
  const name = result.columns[result.columns.length - aggregateCount(result) + column] || '';
  const margin = { top: 28, right: 16, bottom: 90, left: 64 };
  const width = Math.max(480, 60 * data.length + margin.left + margin.right);
  const height = 340;
  const svg = d3.create('svg')
    .attr('xmlns', 'http://www.w3.org/2000/svg')
    .attr('width', width).attr('height', height)
    .attr('viewBox', `0 0 ${width} ${height}`)
    .attr('font-family', 'system-ui, sans-serif').attr('font-size', 12)
    .attr('data-column', name);
  // In the page before drawing, so text can be measured.
  $('chart').replaceChildren(svg.node());
  svg.append('text').attr('x', margin.left).attr('y', 16).attr('font-weight', 'bold')
    .text(`${name} by ${result.columns.slice(0, result.columns.length - aggregateCount(result)).join(', ') || 'all records'}`);
  const x = d3.scaleBand().domain(data.map((d) => d.label))
    .range([margin.left, width - margin.right]).padding(0.2);
  const top = d3.max(data, (d) => (d.interval ? Math.max(d.interval[1], d.value) : d.value)) || 1;
  const bottom = Math.min(0, d3.min(data, (d) => (d.interval ? d.interval[0] : d.value)) || 0);
  const y = d3.scaleLinear().domain([bottom, top]).nice().range([height - margin.bottom, margin.top]);
  svg.append('g').attr('transform', `translate(0,${height - margin.bottom})`)
    .call(d3.axisBottom(x))
    .selectAll('text').attr('transform', 'rotate(-30)').attr('text-anchor', 'end');
  svg.append('g').attr('transform', `translate(${margin.left},0)`).call(d3.axisLeft(y));

  const defs = svg.append('defs');
  defs.append('pattern').attr('id', 'hatch').attr('patternUnits', 'userSpaceOnUse')
    .attr('width', 6).attr('height', 6).attr('patternTransform', 'rotate(45)')
    .append('rect').attr('width', 2).attr('height', 6).attr('fill', '#a0aec0');

  const released = data.filter((d) => !d.withheld);
  const g = svg.append('g');
  const mark = (sel) => sel.attr('class', (d) => `point${d.partial ? ' partial' : ''}${d.withheld ? ' withheld' : ''}`)
    .attr('data-label', (d) => d.label)
    .attr('data-value', (d) => (d.withheld ? '' : String(d.value)))
    .attr('data-partial', (d) => String(d.partial))
    .attr('data-withheld', (d) => String(!!d.withheld))
    .attr('data-rule', (d) => d.rule || '');
  if (kind === 'line') {
    g.append('path').datum(released).attr('fill', 'none').attr('stroke', '#2b6cb0').attr('stroke-width', 2)
      .attr('d', d3.line().x((d) => x(d.label) + x.bandwidth() / 2).y((d) => y(d.value)));
    mark(g.selectAll('circle.point').data(released).join('circle'))
      .attr('cx', (d) => x(d.label) + x.bandwidth() / 2).attr('cy', (d) => y(d.value)).attr('r', 5)
      .attr('fill', (d) => (d.partial ? '#fff' : '#2b6cb0')).attr('stroke', '#2b6cb0').attr('stroke-width', 2);
  } else {
    mark(g.selectAll('rect.point').data(released).join('rect'))
      .attr('x', (d) => x(d.label)).attr('width', x.bandwidth())
      .attr('y', (d) => y(Math.max(0, d.value))).attr('height', (d) => Math.abs(y(d.value) - y(0)))
      .attr('fill', (d) => (d.partial ? '#90cdf4' : '#2b6cb0'));
  }
  // Partial cells: a star and the number of partners in them.
  g.selectAll('text.partial-note').data(released.filter((d) => d.partial)).join('text')
    .attr('class', 'partial-note').attr('text-anchor', 'middle')
    .attr('x', (d) => x(d.label) + x.bandwidth() / 2).attr('y', (d) => y(Math.max(0, d.value)) - 4)
    .attr('fill', '#2c5282').text((d) => `* ${d.partners} of ${state.answer.coverage.length}`);
  // Withheld cells: a hatched slot with the rule, never a height.
  const withheld = data.filter((d) => d.withheld);
  const slot = g.selectAll('g.withheld-slot').data(withheld).join('g').attr('class', 'withheld-slot');
  mark(slot.append('rect'))
    .attr('x', (d) => x(d.label)).attr('width', x.bandwidth())
    .attr('y', margin.top).attr('height', height - margin.bottom - margin.top)
    .attr('fill', 'url(#hatch)').attr('opacity', 0.5);
  slot.append('text').attr('text-anchor', 'middle')
    .attr('transform', (d) => `translate(${x(d.label) + x.bandwidth() / 2},${(height - margin.bottom + margin.top) / 2}) rotate(-90)`)
    .attr('fill', '#4a5568').attr('font-size', 10).text((d) => `withheld (${d.rule || 'unlisted'})`)
    .each(function fit() {
      // A long rule list is squeezed into the slot rather than overflow it.
      const room = height - margin.bottom - margin.top - 8;
      if (this.getComputedTextLength() > room) {
        this.setAttribute('textLength', room);
        this.setAttribute('lengthAdjust', 'spacingAndGlyphs');
      }
    });
  // Intervals, where the answer has them.
  const withInterval = released.filter((d) => d.interval);
  const whisker = g.selectAll('g.interval').data(withInterval).join('g').attr('class', 'interval')
    .attr('stroke', '#1a202c');
  whisker.append('line').attr('x1', (d) => x(d.label) + x.bandwidth() / 2).attr('x2', (d) => x(d.label) + x.bandwidth() / 2)
    .attr('y1', (d) => y(d.interval[0])).attr('y2', (d) => y(d.interval[1]));
  for (const end of [0, 1]) {
    whisker.append('line').attr('x1', (d) => x(d.label) + x.bandwidth() * 0.3).attr('x2', (d) => x(d.label) + x.bandwidth() * 0.7)
      .attr('y1', (d) => y(d.interval[end])).attr('y2', (d) => y(d.interval[end]));
  }
}

function drawTable(result) {
  const nAgg = aggregateCount(result);
  const nKeys = result.columns.length - nAgg;
  const head = el('tr', {}, ...result.columns.map((c) => el('th', { text: c })),
    el('th', { text: 'partners' }), el('th', { text: '' }));
  const rows = (result.cells || []).map((cell) => {
    const keys = (cell.key || []).map((k) => el('td', { text: keyText(k) }));
    while (keys.length < nKeys) keys.push(el('td'));
    if (cell.withheld) {
      return el('tr', { className: 'withheld' }, ...keys,
        el('td', { colspan: String(nAgg + 2), text: `withheld (${cell.withheld_rule})` }));
    }
    const values = cell.values.map((v) => {
      const text = v.bins && v.bins.length
        ? `[${v.bins.map((b, i) => ((v.withheld_bins || []).includes(i) ? '–' : numberText(b))).join(' ')}]`
        : numberText(v.value);
      const iv = intervalOf(v);
      return el('td', { className: 'num', text: iv ? `${text} [${numberText(iv[0])}, ${numberText(iv[1])}]` : text });
    });
    return el('tr', {}, ...keys, ...values, el('td', { className: 'num', text: String(cell.partners) }),
      el('td', { text: cell.partial ? '* partial' : '' }));
  });
  $('table').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  $('applied').textContent = result.applied_where_text ? `as applied: ${result.applied_where_text}` : '';
}

// Under differential privacy each answer says what it drew on its ε budget.
function drawBudgets(answer) {
  const lines = [answer.combined, ...(answer.partners || [])]
    .filter((r) => r.privacy_budget)
    .map((r) => {
      const b = r.privacy_budget;
      return `${r.org_id}: ε ${b.repeat ? 'not spent (a repeat)' : `spent ${b.epsilon_spent}`}, ` +
        `${b.epsilon_left} of ${b.epsilon_budget} left in the window`;
    });
  $('budget').textContent = lines.length ? `Privacy budget — ${lines.join('; ')}` : '';
  $('budget').hidden = lines.length === 0;
}

function drawCoverage(answer) {
  const coverage = answer.coverage || [];
  const answered = coverage.filter((c) => c.state === 'ANSWERED').length;
  $('coverage-summary').textContent = `${answered} of ${coverage.length} partners answered`;
  const head = el('tr', {}, ...['partner', 'state', 'released', 'withheld', 'why / as applied'].map((t) => el('th', { text: t })));
  const rows = coverage.map((c) => el('tr', { 'data-org': c.org_id, 'data-state': c.state },
    el('td', { text: c.org_id }),
    el('td', { className: `state-${c.state}`, text: c.state.toLowerCase().replace('_', ' ') }),
    el('td', { className: 'num', text: c.state === 'ANSWERED' ? String(c.released_cells) : '' }),
    el('td', { className: 'num', text: c.state === 'ANSWERED' ? String(c.withheld_cells) : '' }),
    el('td', { text: c.reason || (c.applied_where_text ? `as applied: ${c.applied_where_text}` : '') })));
  $('coverage').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
}

function drawWithheld(result) {
  const items = [];
  for (const cell of (result.cells || []).filter((c) => c.withheld)) {
    items.push(el('li', { className: 'withheld-cell', 'data-label': cellLabel(cell), 'data-rule': cell.withheld_rule },
      el('strong', { text: cellLabel(cell) }), `: withheld by ${cell.withheld_rule}`));
  }
  for (const w of result.withholdings || []) {
    items.push(el('li', { className: 'withholding', 'data-rule': w.rule },
      el('strong', { text: w.rule }), `: ${w.cells} cell${w.cells === 1 ? '' : 's'} — ${w.reason}`));
  }
  if (result.unlisted_withheld_cells > 0) {
    items.push(el('li', { text: `${result.unlisted_withheld_cells} more withheld cells are not listed by key: their key fields are not public values` }));
  }
  if (items.length === 0) items.push(el('li', { text: 'nothing was withheld' }));
  $('withheld').replaceChildren(...items);
}

function hex(base64) {
  if (!base64) return '';
  return [...atob(base64)].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

function drawReceipts(answer) {
  const results = [answer.combined, ...(answer.partners || [])];
  const head = el('tr', {}, ...['node', 'audit entry', 'entry hash (SHA-256)'].map((t) => el('th', { text: t })));
  const rows = results.filter((r) => r.receipt && r.receipt.org_id).map((r) => el('tr', {},
    el('td', { text: r.receipt.org_id + (r === answer.combined ? ' (combining node)' : '') }),
    el('td', { className: 'num', text: String(r.receipt.audit_index) }),
    el('td', {}, el('code', { text: hex(r.receipt.entry_hash) }))));
  $('receipts').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
}

function showAnswer(r) {
  state.answer = r.answer;
  state.question = r.question || null;
  state.sql = r.sql;
  const result = r.answer.combined;
  const nAgg = aggregateCount(result);
  const names = result.columns.slice(result.columns.length - nAgg);
  $('column').replaceChildren(...names.map((n, i) => option(String(i), n)));
  $('question-sql').textContent = r.sql;
  drawTable(result);
  drawBudgets(r.answer);
  drawCoverage(r.answer);
  drawWithheld(result);
  drawReceipts(r.answer);
  $('result').hidden = false;
  drawChart();
}

// ---- Downloads ------------------------------------------------------------------

function download(name, type, content) {
  const url = URL.createObjectURL(content instanceof Blob ? content : new Blob([content], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvField(s) {
  s = String(s);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// As `fedshare query --output csv`: coverage comments, then the table.
function tableCsv(answer) {
  const result = answer.combined;
  const lines = [];
  if (result.applied_where_text) lines.push(`# as applied: ${result.applied_where_text}`);
  const answered = answer.coverage.filter((c) => c.state === 'ANSWERED').length;
  lines.push(`# coverage: ${answered} of ${answer.coverage.length} partners answered`);
  for (const c of answer.coverage) {
    lines.push(`# ${c.org_id}: ${c.state.toLowerCase()}${c.reason ? `: ${c.reason}` : ''}`);
  }
  lines.push([...result.columns, 'withheld', 'partial', 'partners'].map(csvField).join(','));
  const nAgg = aggregateCount(result);
  for (const cell of result.cells || []) {
    const keys = (cell.key || []).map(keyText);
    const values = cell.withheld ? new Array(nAgg).fill('')
      : cell.values.map((v) => (v.bins && v.bins.length
        ? v.bins.map((b, i) => ((v.withheld_bins || []).includes(i) ? '' : b)).join(';')
        : v.value));
    lines.push([...keys, ...values, cell.withheld ? cell.withheld_rule : '', cell.partial, cell.partners].map(csvField).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

function chartSvgText() {
  const svg = $('chart').querySelector('svg');
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(svg);
}

function downloadPng() {
  const svg = $('chart').querySelector('svg');
  const image = new Image();
  image.onload = () => {
    const canvas = el('canvas', { width: svg.getAttribute('width') * 2, height: svg.getAttribute('height') * 2 });
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => download('fedshare-chart.png', 'image/png', blob));
  };
  image.src = URL.createObjectURL(new Blob([chartSvgText()], { type: 'image/svg+xml' }));
}

// ---- History ----------------------------------------------------------------------

async function loadHistory() {
  const h = await api('/api/history');
  $('history').replaceChildren(...h.answers.slice().reverse().map((a) => {
    const link = el('button', { type: 'button', text: 'show' });
    link.addEventListener('click', async () => {
      showAnswer(await api(`/api/history/${encodeURIComponent(a.id)}`));
      $('status').textContent = `showing the saved answer of ${a.asked_at} (not asked again)`;
    });
    return el('li', {}, `${a.asked_at} `, link, el('br'), el('code', { text: a.sql }));
  }));
}

// ---- Start --------------------------------------------------------------------------

async function start() {
  $('dataset').addEventListener('change', fillPurposes);
  $('purpose').addEventListener('change', fillChoices);
  $('add-measure').addEventListener('click', () => addMeasureRow('COUNT'));
  $('add-filter').addEventListener('click', addFilterRow);
  $('run').addEventListener('click', () => ask({ query: pickedQuestion() }));
  $('run-sql').addEventListener('click', () => ask({ sql: $('sql').value }));
  $('column').addEventListener('change', drawChart);
  $('kind').addEventListener('change', drawChart);
  $('download-csv').addEventListener('click', () => download('fedshare-answer.csv', 'text/csv', tableCsv(state.answer)));
  $('download-svg').addEventListener('click', () => download('fedshare-chart.svg', 'image/svg+xml', chartSvgText()));
  $('download-png').addEventListener('click', downloadPng);
  try {
    const d = await api('/api/describe');
    state.peers = d.peers;
    collectOffers();
    fillDatasets();
    fillPartners();
    const down = state.peers.filter((p) => p.error).length;
    $('status').textContent = `${state.peers.length} partners configured` + (down ? `, ${down} not answering` : '');
    document.body.dataset.ready = 'true';
  } catch (e) {
    $('error').textContent = e.message;
    $('error').hidden = false;
    $('status').textContent = 'cannot reach your node';
  }
  loadHistory().catch(() => {});
}

start();
