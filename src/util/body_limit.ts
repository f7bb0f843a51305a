/**
 * A request body limit for a Hono app: bodies over `maxBytes` (by Content-Length, or counted while read
 * when there is none) are refused through `tooLarge`, which throws the caller's own error so the app's
 * error funnel answers. Knows nothing of the project's errors or texts.
 *
 * A Content-Length alone is judged from the header, before Hono's bodyLimit looks at the body: touching
 * `c.req.raw.body` makes the body a stream (under @hono/node-server it cost about a quarter of the
 * registrar's CPU per request), while the handler's `c.req.text()` takes the bytes as they are. node:http
 * frames the body by that Content-Length, so nothing longer gets through.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

export function limitBody(maxBytes: number, tooLarge: (maxBytes: number) => never): MiddlewareHandler {
  const counted = bodyLimit({ maxSize: maxBytes, onError: () => tooLarge(maxBytes) });
  return (c, next) => {
    const length = c.req.header("content-length");
    if (length === undefined || c.req.header("transfer-encoding") !== undefined) return counted(c, next);
    return Number.parseInt(length, 10) > maxBytes ? tooLarge(maxBytes) : next();
  };
}
