/**
 * The simulator's outputs: a plain-text table for the terminal, a JSON summary, and a
 * self-contained SVG report (hand-written, no chart library): pending / in flight / running over
 * time per policy, the wait-time CDF of every policy, and the summary table.
 */
import { type ArrivalModel, type TraceBounds, traceBounds } from './bound.js';
import type { PolicyResult, SimulationReport } from './simulate.js';

const fmt = (x: number, digits = 1) => (Number.isInteger(x) ? String(x) : x.toFixed(digits));
const hours = (s: number) => (s / 3600).toFixed(2);

export interface TableRow {
  readonly [column: string]: string;
}

/** The summary rows as column names and cells (one row per policy, cells in column order). */
function table(report: SimulationReport): { columns: string[]; cells: string[][] } {
  const data = rows(report);
  const [first] = data;
  return { columns: first ? Object.keys(first) : [], cells: data.map((r) => Object.values(r)) };
}

/** Characters of the longest cell of each column, header included. */
function columnWidths(columns: string[], cells: string[][]): number[] {
  return columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]?.length ?? 0)));
}

function rows(report: SimulationReport): TableRow[] {
  return report.results.map((r) => ({
    policy: r.policy,
    'wait p50': fmt(r.wait.p50),
    p95: fmt(r.wait.p95),
    p99: fmt(r.wait.p99),
    max: fmt(r.wait.max),
    'agent-h prov': hours(r.agentSeconds.provisioned),
    used: hours(r.agentSeconds.used),
    'idle %': (r.agentSeconds.idleFraction * 100).toFixed(1),
    'max in flight': String(r.maxInFlight),
    pods: String(r.agentPods),
    'k8s Jobs': String(r.kubernetes.jobs),
    'k8s calls': String(r.kubernetes.apiCalls),
    'AWS req': String(r.aws.requests),
    killed: String(r.interrupted),
    'not started': String(r.neverStarted),
  }));
}

/** The summary as a fixed-width text table (waits in seconds, agent time in hours). */
export function formatTable(report: SimulationReport): string {
  const { columns, cells } = table(report);
  if (cells.length === 0) return '(no policy)\n';
  const widths = columnWidths(columns, cells);
  const line = (row: string[]) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  const o = report.options;
  const head =
    `${report.trace.jobs} CI jobs on ${report.trace.queues.join(', ')} over ${fmt(report.trace.spanSeconds / 60)} min; ` +
    `MIN ${o.minAgents} MAX ${o.maxAgents}, pod start-up ${o.podStartupSeconds}s, schedule ${o.scheduleSeconds}s, ` +
    `budget ${o.budgetSeconds}s, poll ${o.pollSeconds}s, webhook latency ${o.webhookLatencySeconds}s`;
  return `${[
    head,
    'waits in seconds (scheduled -> agent took the job); agent time in hours',
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
  ].join('\n')}\n`;
}

/**
 * The warm pool's targets (issue 11): p50 wait <= 3 s, p95 within twice the start-up bound (an
 * agent created at each arrival waits exactly the pod start-up), idle <= 15 % of agent time.
 */
/** The warm pool's target wait at p50 (seconds). */
const P50_TARGET_SECONDS = 3;

export function targets(report: SimulationReport, policy = 'ours-warm') {
  const r = report.results.find((x) => x.policy === policy);
  if (!r) return undefined;
  const p95Limit = 2 * report.options.podStartupSeconds;
  const idle = Math.round(r.agentSeconds.idleFraction * 1000) / 10;
  return {
    policy,
    p50: { value: r.wait.p50, limit: P50_TARGET_SECONDS, met: r.wait.p50 <= P50_TARGET_SECONDS },
    p95: { value: r.wait.p95, limit: p95Limit, met: r.wait.p95 <= p95Limit },
    idlePercent: { value: idle, limit: 15, met: idle <= 15 },
  };
}

export function targetsLine(report: SimulationReport): string {
  const t = targets(report);
  if (!t) return '';
  const mark = (met: boolean) => (met ? 'met' : 'MISSED');
  return `targets (${t.policy}): wait p50 ${t.p50.value} <= ${t.p50.limit} s ${mark(t.p50.met)}; p95 ${t.p95.value} <= ${t.p95.limit} s (2 x start-up) ${mark(t.p95.met)}; idle ${t.idlePercent.value} <= ${t.idlePercent.limit} % ${mark(t.idlePercent.met)}\n`;
}

/**
 * The bounds of the trace's generator (bound.ts traceBounds) at p50 ≤ the target's wait: half the
 * jobs served within it, one start-up per job that ran (the oracle's agents), the jobs' run time.
 */
export function reportBounds(model: ArrivalModel, report: SimulationReport): TraceBounds | undefined {
  const ran = report.results.find((r) => r.policy === 'oracle') ?? report.results[0];
  if (!ran) return undefined;
  return traceBounds(model, {
    share: 0.5,
    slackSeconds: P50_TARGET_SECONDS,
    agents: ran.started,
    startupSeconds: report.options.podStartupSeconds,
    usedAgentSeconds: ran.agentSeconds.used,
  });
}

/** The JSON summary: everything but the raw series and wait lists. */
export function summaryJson(report: SimulationReport): unknown {
  return {
    options: {
      ...report.options,
      scalerLog: undefined,
      // The training days' jobs stay out; their seeds and count say what ours-warm learned from.
      warmHistory: undefined,
      ...(report.options.warmHistory?.length ? { warmHistoryDays: report.options.warmHistory.length } : {}),
    },
    trace: report.trace,
    results: report.results.map(({ waits: _w, series: _s, ...rest }) => rest),
    targets: targets(report),
  };
}

// --- SVG ------------------------------------------------------------------------------------

export const COLORS: Record<string, string> = {
  ours: '#1f77b4',
  'ours-warm': '#17becf',
  'keda-default': '#8c564b',
  'keda-accurate': '#bcbd22',
  'keda-eager': '#e377c2',
  'agent-stack-k8s': '#ff7f0e',
  'github-aws-runners': '#7f7f7f',
  arc: '#393b79',
  'long-lived-job': '#d62728',
  'job-per-ci-job': '#9467bd',
  oracle: '#2ca02c',
};
const SERIES_COLORS = { pending: '#ff7f0e', inFlight: '#1f77b4', running: '#2ca02c' } as const;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const pow = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  const n = raw / pow;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * pow;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function axes(box: Box, xMax: number, yMax: number, xLabel: string, xScale: number, yLabel: string): string[] {
  const out: string[] = [];
  out.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="#fff" stroke="#999"/>`);
  const xs = niceStep(xMax / xScale, 8);
  for (let v = 0; v <= xMax / xScale + 1e-9; v += xs) {
    const px = box.x + (v * xScale * box.w) / xMax;
    out.push(`<line x1="${px.toFixed(1)}" y1="${box.y}" x2="${px.toFixed(1)}" y2="${box.y + box.h}" stroke="#eee"/>`);
    out.push(
      `<text x="${px.toFixed(1)}" y="${box.y + box.h + 13}" font-size="10" text-anchor="middle">${fmt(Number(v.toPrecision(6)))}</text>`,
    );
  }
  const ys = niceStep(yMax, 4);
  for (let v = 0; v <= yMax + 1e-9; v += ys) {
    const py = box.y + box.h - (v * box.h) / yMax;
    out.push(`<line x1="${box.x}" y1="${py.toFixed(1)}" x2="${box.x + box.w}" y2="${py.toFixed(1)}" stroke="#eee"/>`);
    out.push(
      `<text x="${box.x - 4}" y="${(py + 3).toFixed(1)}" font-size="10" text-anchor="end">${fmt(Number(v.toPrecision(6)), 2)}</text>`,
    );
  }
  out.push(
    `<text x="${box.x + box.w / 2}" y="${box.y + box.h + 27}" font-size="11" text-anchor="middle">${esc(xLabel)}</text>`,
  );
  out.push(
    `<text x="${box.x - 34}" y="${box.y + box.h / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 ${box.x - 34} ${box.y + box.h / 2})">${esc(yLabel)}</text>`,
  );
  return out;
}

/** A step line through (x, y) points. */
function stepPath(points: readonly (readonly [number, number])[], box: Box, xMax: number, yMax: number): string {
  const px = (x: number) => (box.x + (Math.min(x, xMax) * box.w) / xMax).toFixed(1);
  const py = (y: number) => (box.y + box.h - (Math.min(y, yMax) * box.h) / yMax).toFixed(1);
  let d = '';
  let prevY: number | undefined;
  let lastX = 0;
  for (const [x, y] of points) {
    lastX = x;
    if (prevY === undefined) d += `M${px(x)},${py(y)}`;
    else if (y !== prevY) d += `H${px(x)}V${py(y)}`;
    else continue;
    prevY = y;
  }
  if (prevY !== undefined) d += `H${px(lastX)}`;
  return d;
}

/** Keeps at most `limit` points, taking the max of each bucket (peaks stay visible). */
function downsample<T extends { t: number }>(points: readonly T[], limit: number, keys: readonly (keyof T)[]): T[] {
  if (points.length <= limit) return [...points];
  const size = Math.ceil(points.length / limit);
  const out: T[] = [];
  for (let i = 0; i < points.length; i += size) {
    const bucket = points.slice(i, i + size);
    const [head] = bucket;
    if (head === undefined) continue;
    const merged = { ...head };
    for (const k of keys) (merged as Record<keyof T, unknown>)[k] = Math.max(...bucket.map((p) => p[k] as number));
    out.push(merged);
  }
  return out;
}

export function renderSvg(report: SimulationReport, title = 'CI agent autoscaler: what-if simulation'): string {
  const width = 980;
  const left = 70;
  const plotW = width - left - 170;
  const panelH = 120;
  const gap = 48;
  const results = report.results;
  const tMax = Math.max(60, ...results.map((r) => r.series.at(-1)?.t ?? 0));
  const timeScale = tMax > 3 * 3600 ? 3600 : 60;
  const timeUnit = timeScale === 3600 ? 'hours' : 'minutes';
  const yMax = Math.max(1, ...results.flatMap((r) => r.series.map((p) => Math.max(p.pending, p.inFlight, p.running))));
  const out: string[] = [];
  let y = 20;
  const o = report.options;
  out.push(`<text x="${left}" y="${y}" font-size="16" font-weight="bold">${esc(title)}</text>`);
  y += 18;
  out.push(
    `<text x="${left}" y="${y}" font-size="11" fill="#444">${esc(
      `${report.trace.jobs} CI jobs (${report.trace.queues.join(', ')}), MIN ${o.minAgents}, MAX ${o.maxAgents} per queue, pod start-up ${o.podStartupSeconds} s, ` +
        `agent idle timeout ${o.idleTimeoutSeconds} s, schedule ${o.scheduleSeconds} s, budget ${o.budgetSeconds} s, poll ${o.pollSeconds} s, webhook latency ${o.webhookLatencySeconds} s`,
    )}</text>`,
  );
  y += 16;

  // Legend of the time series.
  const legend = (x: number, yy: number, color: string, label: string) =>
    `<line x1="${x}" y1="${yy - 4}" x2="${x + 18}" y2="${yy - 4}" stroke="${color}" stroke-width="2"/><text x="${x + 22}" y="${yy}" font-size="11">${esc(label)}</text>`;
  out.push(legend(left, y + 6, SERIES_COLORS.pending, 'pending (CI jobs waiting)'));
  out.push(legend(left + 190, y + 6, SERIES_COLORS.inFlight, 'in flight (agent pods alive)'));
  out.push(legend(left + 390, y + 6, SERIES_COLORS.running, 'running (CI jobs on an agent)'));
  out.push(
    `<line x1="${left + 600}" y1="${y + 2}" x2="${left + 618}" y2="${y + 2}" stroke="#000" stroke-dasharray="4 3"/><text x="${left + 622}" y="${y + 6}" font-size="11">MAX_AGENTS</text>`,
  );
  y += 22;

  for (const r of results) {
    const box = { x: left, y, w: plotW, h: panelH };
    out.push(...axes(box, tMax, yMax, `time (${timeUnit})`, timeScale, 'count'));
    const pts = downsample(r.series, 300, ['pending', 'inFlight', 'running']);
    for (const key of ['pending', 'inFlight', 'running'] as const) {
      out.push(
        `<path d="${stepPath(
          pts.map((p) => [p.t, p[key]] as const),
          box,
          tMax,
          yMax,
        )}" fill="none" stroke="${SERIES_COLORS[key]}" stroke-width="1.3"/>`,
      );
    }
    const maxLine = box.y + box.h - (o.maxAgents * box.h) / yMax;
    if (o.maxAgents <= yMax)
      out.push(
        `<line x1="${box.x}" y1="${maxLine.toFixed(1)}" x2="${box.x + box.w}" y2="${maxLine.toFixed(1)}" stroke="#000" stroke-dasharray="4 3" stroke-width="0.8"/>`,
      );
    const tx = box.x + box.w + 10;
    out.push(
      `<text x="${tx}" y="${box.y + 14}" font-size="13" font-weight="bold" fill="${COLORS[r.policy] ?? '#000'}">${esc(r.policy)}</text>`,
    );
    const facts = [
      `wait p50 ${fmt(r.wait.p50)} s`,
      `wait p95 ${fmt(r.wait.p95)} s`,
      `wait p99 ${fmt(r.wait.p99)} s`,
      `idle ${(r.agentSeconds.idleFraction * 100).toFixed(1)} % of ${hours(r.agentSeconds.provisioned)} agent-h`,
      `max in flight ${r.maxInFlight}`,
      `${r.kubernetes.jobs} Jobs, ${r.kubernetes.apiCalls} k8s calls`,
      ...(r.interrupted ? [`${r.interrupted} jobs killed mid-run`] : []),
    ];
    facts.forEach((f, i) => {
      out.push(`<text x="${tx}" y="${box.y + 30 + i * 13}" font-size="10.5">${esc(f)}</text>`);
    });
    y += panelH + gap;
  }

  // Wait versus idle.
  y += 10;
  const trade = tradeoffPanel(
    results.map((r) => pointOf(r.policy, r.policy, r)),
    left,
    y,
    plotW,
  );
  out.push(...trade.svg);
  y = trade.bottom + 20;

  // Wait-time CDF.
  y += 10;
  const waitMax = Math.max(1, ...results.map((r) => r.waits.at(-1) ?? 0));
  const box = { x: left, y, w: plotW, h: 200 };
  out.push(
    `<text x="${left}" y="${y - 8}" font-size="13" font-weight="bold">Queue wait (scheduled -> agent took the job): fraction of CI jobs that waited at most x seconds</text>`,
  );
  out.push(...axes(box, waitMax, 1, 'wait (seconds)', 1, 'fraction of jobs'));
  results.forEach((r, i) => {
    const n = r.waits.length;
    if (n === 0) return;
    const pts: [number, number][] = [[0, 0]];
    // At most ~300 steps: the waits at evenly spaced ranks (the last one always kept).
    const stride = Math.max(1, Math.ceil(n / 300));
    let prev = 0;
    for (let k = stride - 1; k < n + stride - 1; k += stride) {
      const i = Math.min(k, n - 1);
      const wait = r.waits[i] ?? 0;
      pts.push([wait, prev / n]);
      pts.push([wait, (i + 1) / n]);
      prev = i + 1;
      if (i === n - 1) break;
    }
    pts.push([waitMax, 1]);
    const px = (x: number) => (box.x + (x * box.w) / waitMax).toFixed(1);
    const py = (v: number) => (box.y + box.h - v * box.h).toFixed(1);
    const d = pts.map(([x, v], k) => `${k === 0 ? 'M' : 'L'}${px(x)},${py(v)}`).join('');
    out.push(
      `<path d="${d}" fill="none" stroke="${COLORS[r.policy] ?? '#000'}" stroke-width="${r.policy.startsWith('ours') ? 2.2 : 1.5}"/>`,
    );
    out.push(legend(box.x + box.w + 10, box.y + 14 + i * 16, COLORS[r.policy] ?? '#000', r.policy));
  });
  y += box.h + 50;

  // Summary table.
  const { columns, cells } = table(report);
  if (cells.length > 0) {
    // Column widths from the longest cell (about 6 px a character at 10 px), right-aligned numbers.
    const chars = columnWidths(columns, cells);
    const total = chars.reduce((a, b) => a + b, 0);
    const scale = (width - 20) / total;
    const edges: number[] = [];
    chars.reduce((x, c) => {
      edges.push(x + c * scale);
      return x + c * scale;
    }, 10);
    out.push(
      `<text x="10" y="${y}" font-size="13" font-weight="bold">Summary (waits in seconds, agent time in hours)</text>`,
    );
    y += 18;
    const row = (cells: string[], bold: boolean) => {
      cells.forEach((c, i) => {
        out.push(
          `<text x="${(i === 0 ? 10 : (edges[i] ?? 0) - 4).toFixed(1)}" y="${y}" font-size="10" ${i === 0 ? '' : 'text-anchor="end"'} ${bold ? 'font-weight="bold"' : ''}>${esc(c)}</text>`,
        );
      });
      y += 15;
    };
    row(columns, true);
    for (const r of cells) row(r, false);
  }
  y += 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.ceil(y)}" viewBox="0 0 ${width} ${Math.ceil(y)}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

export type { PolicyResult };

// --- wait versus idle -------------------------------------------------------------------------

export interface TradeoffPoint {
  /** Shown next to the point. */
  readonly label: string;
  /** Colour key. */
  readonly policy: string;
  readonly p50: number;
  readonly p95: number;
  /** Idle agent time, percent of provisioned. */
  readonly idlePercent: number;
  readonly agentHours: number;
}

export function pointOf(label: string, policy: string, r: PolicyResult): TradeoffPoint {
  return {
    label,
    policy,
    p50: r.wait.p50,
    p95: r.wait.p95,
    idlePercent: Math.round(r.agentSeconds.idleFraction * 1000) / 10,
    agentHours: Math.round((r.agentSeconds.provisioned / 3600) * 100) / 100,
  };
}

/**
 * Wait versus idle: one point per policy and setting; x = idle % of provisioned agent time,
 * y = wait (log scale, 1 + seconds): a filled dot at p50, an open dot at p95, joined.
 */
function tradeoffPanel(
  points: readonly TradeoffPoint[],
  left: number,
  top: number,
  width: number,
  title = 'Wait versus idle: p50 (filled) and p95 (open) wait against idle agent time, one point per policy',
): { svg: string[]; bottom: number } {
  const out: string[] = [];
  const box = { x: left, y: top + 10, w: width, h: 300 };
  out.push(`<text x="${left}" y="${top}" font-size="13" font-weight="bold">${esc(title)}</text>`);
  const xMax = Math.max(20, Math.ceil(Math.max(...points.map((p) => p.idlePercent), 0) / 10) * 10);
  const yMax = Math.log10(1 + Math.max(10, ...points.map((p) => p.p95)));
  out.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="#fff" stroke="#999"/>`);
  const px = (x: number) => box.x + (Math.min(x, xMax) / xMax) * box.w;
  const py = (w: number) => box.y + box.h - (Math.log10(1 + Math.max(0, w)) / yMax) * box.h;
  for (let v = 0; v <= xMax; v += xMax > 50 ? 20 : 10) {
    out.push(
      `<line x1="${px(v).toFixed(1)}" y1="${box.y}" x2="${px(v).toFixed(1)}" y2="${box.y + box.h}" stroke="#eee"/>`,
    );
    out.push(`<text x="${px(v).toFixed(1)}" y="${box.y + box.h + 13}" font-size="10" text-anchor="middle">${v}</text>`);
  }
  for (const v of [0, 1, 3, 10, 30, 100, 300, 1000, 3000]) {
    if (Math.log10(1 + v) > yMax) break;
    out.push(
      `<line x1="${box.x}" y1="${py(v).toFixed(1)}" x2="${box.x + box.w}" y2="${py(v).toFixed(1)}" stroke="#eee"/>`,
    );
    out.push(`<text x="${box.x - 4}" y="${(py(v) + 3).toFixed(1)}" font-size="10" text-anchor="end">${v}</text>`);
  }
  out.push(
    `<text x="${box.x + box.w / 2}" y="${box.y + box.h + 27}" font-size="11" text-anchor="middle">idle agent time (% of provisioned)</text>`,
  );
  out.push(
    `<text x="${box.x - 34}" y="${box.y + box.h / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 ${box.x - 34} ${box.y + box.h / 2})">wait (seconds, log scale)</text>`,
  );
  for (const p of points) {
    const color = COLORS[p.policy] ?? '#000';
    const x = px(p.idlePercent).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${py(p.p50).toFixed(1)}" x2="${x}" y2="${py(p.p95).toFixed(1)}" stroke="${color}" stroke-width="1"/>`,
    );
    out.push(
      `<circle cx="${x}" cy="${py(p.p95).toFixed(1)}" r="3.5" fill="#fff" stroke="${color}" stroke-width="1.3"/>`,
    );
    out.push(`<circle cx="${x}" cy="${py(p.p50).toFixed(1)}" r="4" fill="${color}"/>`);
    out.push(
      `<text x="${(Number(x) + 6).toFixed(1)}" y="${(py(p.p50) + 3).toFixed(1)}" font-size="9.5" fill="${color}">${esc(p.label)}</text>`,
    );
  }
  return { svg: out, bottom: box.y + box.h + 34 };
}

/** A standalone SVG of the wait-versus-idle plot (the sweep's). */
export function renderTradeoffSvg(points: readonly TradeoffPoint[], title: string, note = ''): string {
  const width = 980;
  const panel = tradeoffPanel(points, 70, 50, width - 70 - 170, title);
  const height = Math.ceil(panel.bottom + 10);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
    `<text x="70" y="22" font-size="11" fill="#444">${esc(note)}</text>`,
    ...panel.svg,
    '</svg>',
    '',
  ].join('\n');
}
