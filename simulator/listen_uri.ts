/**
 * `--listen` values: the same TCTI-style strings clients use (spec/tpm.md §1.6), read as where to
 * serve. `swtpm:host=H,port=P`, `swtpm:path=S`, `mssim:host=H,port=P`, `mssim:path=S`; port 0 picks
 * a free port pair; the companion channel is port + 1 or path + ".ctrl", where clients look for it.
 */
import { TpmUriError } from "../src/tpm/errors.ts";
import { DEFAULT_SOCKET_PORT, parseTpmUri } from "../src/tpm/transport/uri.ts";
import type { TpmEngine } from "./engine.ts";
import { startSwtpmServer, type SwtpmServer } from "./swtpm_server.ts";
import { type MssimServer, startMssimServer } from "./mssim_server.ts";
import type { ConnectionOptions } from "./socket_server.ts";

export type ListenAddress =
  | { kind: "swtpm" | "mssim"; host: string; port: number }
  | { kind: "swtpm" | "mssim"; path: string };

/** `port=0` (any spelling of zero) as a whole key=value item. */
const PORT_ZERO = /(^|[:,])(\s*port\s*=\s*)0+(\s*)(?=,|$)/;

/** Parse a `--listen` value. Throws TpmUriError naming what is wrong. */
export function parseListenUri(input: string): ListenAddress {
  // parseTpmUri refuses port 0 (no client can connect there); for a server it means "pick one".
  const anyPort = PORT_ZERO.test(input);
  const u = parseTpmUri(anyPort ? input.replace(PORT_ZERO, `$1$2${DEFAULT_SOCKET_PORT}$3`) : input);
  if (u.kind === "device") {
    throw new TpmUriError(
      `Cannot listen on "${input}": a device is not a socket; use swtpm:host=127.0.0.1,port=2321 or swtpm:path=/run/tpm.sock`,
    );
  }
  if ("path" in u) return { kind: u.kind, path: u.path };
  return { kind: u.kind, host: u.host, port: anyPort ? 0 : u.port };
}

export interface ListenOptions extends ConnectionOptions {
  /** A command must arrive whole within this time of its first byte. */
  requestTimeoutMs?: number;
  /** Protocol errors of clients and failures of the engine (default console.warn). */
  warn?: (message: string) => void;
}

/** Serve `engine` where `listen` says. The returned server's uri is what clients connect to. */
export function startListening(
  engine: TpmEngine,
  listen: string | ListenAddress,
  options: ListenOptions = {},
): Promise<SwtpmServer | MssimServer> {
  const a = typeof listen === "string" ? parseListenUri(listen) : listen;
  const where = "path" in a ? { path: a.path } : { host: a.host, port: a.port };
  return a.kind === "swtpm"
    ? startSwtpmServer(engine, { ...where, ...options })
    : startMssimServer(engine, { ...where, ...options });
}
