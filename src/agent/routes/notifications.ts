/**
 * notifications/revocation (keylime.md §9): the body is checked here, the signature and the actions by
 * revocation.ts after the answer (upstream answers 200 at once and hands the message to a worker).
 * Upstream: keylime/rust-keylime keylime-agent/src/notifications_handler.rs.
 */
import type { RevocationBody } from "../../protocol/agent_api.ts";
import type { RouteHandlers } from "./handler.ts";

export interface NotificationRouteDeps {
  /** Verify and act on a notification. Not awaited by the answer; must not throw. */
  onRevocation(body: RevocationBody): void;
}

export function notificationHandlers(deps: NotificationRouteDeps): RouteHandlers<"revocation"> {
  return {
    revocation({ body }) {
      deps.onRevocation(body);
      return Promise.resolve({});
    },
  };
}
