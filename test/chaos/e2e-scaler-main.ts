/**
 * One scaler invocation as its own process (the end-to-end chaos suite bundles this file and
 * runs it as a child process, then may SIGKILL it at any moment): the real Lambda handler, its
 * configuration from the environment, a budget of CHAOS_BUDGET_MS.
 */
import type { Context } from 'aws-lambda';
import { handler } from '../../functions/scaler/handler.js';

const budgetMs = Number(process.env.CHAOS_BUDGET_MS ?? '3000');
const context = { getRemainingTimeInMillis: () => budgetMs + 8_000 } as unknown as Context;
const result = await handler({}, context);
process.stdout.write(`${JSON.stringify(result)}\n`);
