/** In-memory RouteStore (simulator, unit tests): same semantics as the DynamoDB one. */
import { jobKey } from '../../../functions/core/job-event.js';
import type { RouteJob, RouteStore, StoredRoute } from '../../../functions/core/stores.js';

export class InMemoryRouteStore implements RouteStore {
  readonly routes = new Map<string, StoredRoute>();
  /** Calls of getMany / putMany (for tests: how often the store was asked). */
  readonly calls = { getMany: 0, putMany: 0 };
  /** Set to make every call fail with this message (an unreachable table). */
  failWith: string | undefined;

  async getMany(jobs: readonly RouteJob[]): Promise<(StoredRoute | undefined)[]> {
    this.calls.getMany++;
    if (this.failWith) throw new Error(this.failWith);
    return jobs.map((job) => this.routes.get(jobKey(job)));
  }

  async putMany(routes: readonly { job: RouteJob; route: StoredRoute }[]): Promise<void> {
    this.calls.putMany++;
    if (this.failWith) throw new Error(this.failWith);
    for (const { job, route } of routes) this.routes.set(jobKey(job), route);
  }
}
