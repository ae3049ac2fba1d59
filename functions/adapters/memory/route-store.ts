/** In-memory RouteStore (simulator, unit tests): same semantics as the DynamoDB one. */
import { jobKey } from '../../core/job-event.js';
import type { RouteStore, StoredRoute } from '../../core/stores.js';

export class InMemoryRouteStore implements RouteStore {
  readonly routes = new Map<string, StoredRoute>();

  async get(job: Parameters<RouteStore['get']>[0]): Promise<StoredRoute | undefined> {
    return this.routes.get(jobKey(job));
  }

  async put(job: Parameters<RouteStore['put']>[0], route: StoredRoute): Promise<void> {
    this.routes.set(jobKey(job), route);
  }
}
