/**
 * `--sweep`: "which MIN_AGENTS and MAX_AGENTS should I pick?" Runs ours on the same trace for
 * every MIN x MAX of a grid, with and without the adaptive warm pool, and recommends the cheapest
 * setting (fewest provisioned agent-hours) whose p95 wait meets the target.
 */
import { pointOf, type TradeoffPoint } from './report.js';
import { runPolicy, type SimulationOptions } from './simulate.js';
import type { TraceJob } from './trace.js';

export interface SweepRow {
  readonly minAgents: number;
  readonly maxAgents: number;
  readonly warmPool: boolean;
  /** The warm pool's quantile (WarmPoolOptions.quantile) when on. */
  readonly warmQuantile?: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly idlePercent: number;
  readonly agentHours: number;
  readonly kubeCalls: number;
}

export interface SweepResult {
  readonly targetP95: number;
  readonly rows: readonly SweepRow[];
  /** The cheapest row meeting the target, if any. */
  readonly best?: SweepRow;
  readonly points: readonly TradeoffPoint[];
}

export const DEFAULT_SWEEP_MIN = [0, 1, 2, 4, 8] as const;
export const DEFAULT_SWEEP_MAX = [10, 20, 30, 40, 60] as const;
/** Warm pool settings swept: off, and adaptive at these quantiles (the product's default is 0.75). */
export const DEFAULT_SWEEP_WARM = [undefined, 0.5, 0.75] as const;

export async function sweep(
  trace: readonly TraceJob[],
  options: SimulationOptions,
  grid: {
    readonly min: readonly number[];
    readonly max: readonly number[];
    readonly targetP95: number;
    /** undefined: warm pool off; a number: adaptive with that quantile. */
    readonly warm?: readonly (number | undefined)[];
  },
): Promise<SweepResult> {
  const rows: SweepRow[] = [];
  const points: TradeoffPoint[] = [];
  for (const maxAgents of grid.max) {
    for (const minAgents of grid.min) {
      if (minAgents > maxAgents || maxAgents < 1) continue;
      for (const quantile of grid.warm ?? DEFAULT_SWEEP_WARM) {
        const warmPool = quantile !== undefined;
        const policy = warmPool ? 'ours-warm' : 'ours';
        const r = await runPolicy(policy, trace, {
          ...options,
          minAgents,
          maxAgents,
          ...(warmPool ? { warmPool: { ...options.warmPool, quantile } } : {}),
        });
        const point = pointOf(`${minAgents}/${maxAgents}${warmPool ? ` q${quantile}` : ''}`, policy, r);
        points.push(point);
        rows.push({
          minAgents,
          maxAgents,
          warmPool,
          ...(warmPool ? { warmQuantile: quantile } : {}),
          p50: r.wait.p50,
          p95: r.wait.p95,
          p99: r.wait.p99,
          idlePercent: point.idlePercent,
          agentHours: point.agentHours,
          kubeCalls: r.kubernetes.apiCalls,
        });
      }
    }
  }
  const meeting = rows.filter((r) => r.p95 <= grid.targetP95);
  const best = [...meeting].sort(
    (a, b) => a.agentHours - b.agentHours || a.p95 - b.p95 || a.maxAgents - b.maxAgents || a.minAgents - b.minAgents,
  )[0];
  return { targetP95: grid.targetP95, rows, ...(best ? { best } : {}), points };
}

export function formatSweep(result: SweepResult): string {
  const head = ['MIN', 'MAX', 'warm pool', 'wait p50', 'p95', 'p99', 'idle %', 'agent-h', 'k8s calls'];
  const data = result.rows.map((r) => [
    String(r.minAgents),
    String(r.maxAgents),
    r.warmPool ? `adaptive q${r.warmQuantile}` : 'off',
    String(r.p50),
    String(r.p95),
    String(r.p99),
    r.idlePercent.toFixed(1),
    r.agentHours.toFixed(2),
    String(r.kubeCalls),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...data.map((d) => d[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  const b = result.best;
  const verdict = b
    ? `cheapest setting with p95 wait <= ${result.targetP95} s: MIN_AGENTS=${b.minAgents} MAX_AGENTS=${b.maxAgents} WARM_POOL=${b.warmPool ? `adaptive (quantile ${b.warmQuantile})` : 'off'} (${b.agentHours.toFixed(2)} agent-h, wait p50 ${b.p50} s, p95 ${b.p95} s, idle ${b.idlePercent.toFixed(1)} %)`
    : `no setting of the grid meets p95 wait <= ${result.targetP95} s`;
  return `${[line(head), line(widths.map((w) => '-'.repeat(w))), ...data.map(line), '', verdict].join('\n')}\n`;
}
