/**
 * A request body limit for a Hono app: bodies over `maxBytes` (by Content-Length, or counted while read
 * when there is none) are refused through `tooLarge`, which throws the caller's own error so the app's
 * error funnel answers. Knows nothing of the project's errors or texts.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

export function limitBody(maxBytes: number, tooLarge: (maxBytes: number) => never): MiddlewareHandler {
  return bodyLimit({ maxSize: maxBytes, onError: () => tooLarge(maxBytes) });
}
