/**
 * notifications/revocation (keylime.md §9): the body is checked here; the signature and the actions by the
 * revocation worker (revocation.ts) after the answer, as upstream answers 200 at once.
 * Upstream: keylime/rust-keylime keylime-agent/src/notifications_handler.rs.
 */
import type { RevocationWorker } from "../revocation.ts";
import type { RouteHandlers } from "./handler.ts";

export interface NotificationRouteDeps {
  revocations: Pick<RevocationWorker, "submit">;
}

export function notificationHandlers(deps: NotificationRouteDeps): RouteHandlers<"revocation"> {
  return {
    revocation({ body }) {
      void deps.revocations.submit(body);
      return Promise.resolve({});
    },
  };
}
