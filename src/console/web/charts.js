// Inline SVG charts. Every label goes in as a text node: paths and codes come from tools.
const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const colour = (call) => (call.decision === 'deny' ? '#c53030' : call.code === 'ok' ? '#2f855a' : '#b7791f');

/** A run's host calls on a time axis: one row per call, a bar from its start for its duration. */
export function timelineChart(calls, runDurationMs) {
  const rowH = 16;
  const left = 80;
  const width = 560;
  const rows = Math.min(calls.length, 60);
  const height = rows * rowH + 28;
  const span = Math.max(1, runDurationMs ?? 0, ...calls.map((c) => c.offsetMs + (c.durationMs ?? 0)));
  const x = (ms) => left + ((width - left - 10) * ms) / span;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', role: 'img', 'aria-label': `timeline of ${calls.length} host calls` });
  for (let t = 0; t <= 4; t++) {
    const ms = (span * t) / 4;
    svg.append(s('line', { x1: x(ms), x2: x(ms), y1: 0, y2: height - 18, stroke: '#e3e6eb' }));
    svg.append(s('text', { x: x(ms), y: height - 4, 'text-anchor': t === 0 ? 'start' : t === 4 ? 'end' : 'middle' }, `${Math.round(ms)} ms`));
  }
  calls.slice(0, rows).forEach((c, i) => {
    const y = i * rowH + 2;
    svg.append(s('text', { x: 0, y: y + 10 }, c.op ?? '?'));
    const w = Math.max(3, x(c.offsetMs + (c.durationMs ?? 0)) - x(c.offsetMs));
    const bar = s('rect', { x: x(c.offsetMs), y, width: w, height: rowH - 4, rx: 2, fill: colour(c), 'data-call': i });
    bar.append(s('title', {}, `${c.op} ${c.target ?? ''} ${c.code ?? ''} ${c.durationMs ?? '-'} ms`));
    svg.append(bar);
  });
  return svg;
}

/** Horizontal bars: calls, and denials split by code, on one scale. */
export function toolBars(tool, max) {
  const width = 260;
  const rows = [['calls', tool.calls, '#2b6cb0'], ...Object.entries(tool.denialsByCode).map(([code, n]) => [code, n, '#c53030'])];
  const rowH = 16;
  const svg = s('svg', { viewBox: `0 0 ${width} ${rows.length * rowH}`, width: '100%', role: 'img', 'aria-label': `${tool.tool}: ${tool.calls} calls, ${tool.denials} denied` });
  rows.forEach(([label, n, fill], i) => {
    const y = i * rowH;
    svg.append(s('text', { x: 0, y: y + 11 }, String(label).replace(/^E_/, '')));
    const w = Math.max(n > 0 ? 2 : 0, ((width - 150) * n) / Math.max(1, max));
    svg.append(s('rect', { x: 110, y: y + 2, width: w, height: rowH - 5, rx: 2, fill }));
    svg.append(s('text', { x: 114 + w, y: y + 11 }, String(n)));
  });
  return svg;
}

/** The latency histogram as a strip of bars (bucket upper edges in ms). */
export function latencyStrip(h) {
  const buckets = h.buckets.filter((b) => b.count > 0);
  const width = 260;
  const svg = s('svg', { viewBox: `0 0 ${width} 34`, width: '100%', role: 'img', 'aria-label': 'latency histogram' });
  if (buckets.length === 0) return svg;
  const max = Math.max(...buckets.map((b) => b.count));
  const bw = Math.min(34, width / buckets.length);
  buckets.forEach((b, i) => {
    const bh = Math.max(1, (20 * b.count) / max);
    svg.append(s('rect', { x: i * bw + 1, y: 20 - bh, width: bw - 2, height: bh, fill: '#805ad5' }));
    svg.append(s('text', { x: i * bw + bw / 2, y: 32, 'text-anchor': 'middle' }, b.leMs === null ? '>' : `≤${b.leMs}`));
  });
  return svg;
}
