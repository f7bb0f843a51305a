/**
 * TPM URIs in tpm2-tss TCTI spelling (spec/tpm.md §1.6): what TPM2TOOLS_TCTI / TCTI hold, so one
 * string configures tpm2-tools, rust-keylime (tss-esapi) and this agent alike.
 *
 *   device:/dev/tpmrm0   device (= /dev/tpm0)
 *   swtpm:host=H,port=P  swtpm:port=P  swtpm:path=S  swtpm (= localhost:2321)
 *   mssim:...            the same keys
 */
import { TpmUriError } from "../errors.ts";
import type { Transport, TransportOptions } from "./transport.ts";
import { DeviceTransport } from "./device.ts";
import { type SocketAddress, socketUri } from "./socket_link.ts";
import { SwtpmTransport } from "./swtpm.ts";
import { MssimTransport } from "./mssim.ts";

export type TpmUri =
  | { kind: "device"; path: string }
  | ({ kind: "swtpm" } & SocketAddress)
  | ({ kind: "mssim" } & SocketAddress);

/** tpm2-tss defaults (tcti-device.c, tcti-swtpm.c, tcti-mssim.c). */
export const DEFAULT_DEVICE_PATH = "/dev/tpm0";
export const DEFAULT_SOCKET_HOST = "localhost";
export const DEFAULT_SOCKET_PORT = 2321;

const SOCKET_KEYS = ["host", "port", "path"] as const;

/** Parse a TCTI-style string. Throws TpmUriError naming the part that is wrong. */
export function parseTpmUri(input: string): TpmUri {
  const s = input.trim();
  const bad = (why: string) => new TpmUriError(`Invalid TPM URI "${input}": ${why}`);
  if (s === "") throw bad("it is empty; expected e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321");
  const colon = s.indexOf(":");
  const kind = colon < 0 ? s : s.slice(0, colon);
  const conf = colon < 0 ? "" : s.slice(colon + 1);

  switch (kind) {
    case "device": {
      const p = conf === "" ? DEFAULT_DEVICE_PATH : conf;
      if (!p.startsWith("/")) throw bad(`device path "${p}" must be absolute, e.g. device:/dev/tpmrm0`);
      if (p.includes(",") || p.includes("=")) {
        throw bad(`device takes a bare path, not options ("${p}"); e.g. device:/dev/tpmrm0`);
      }
      return { kind: "device", path: p };
    }
    case "swtpm":
      return { kind: "swtpm", ...parseSocketConf(conf, bad) };
    case "mssim":
      return { kind: "mssim", ...parseSocketConf(conf, bad) };
    case "tabrmd":
      throw new TpmUriError(
        `Unsupported TPM URI "${input}": tpm2-abrmd (tabrmd) is not supported; use device:/dev/tpmrm0, ` +
          `the kernel resource manager, instead`,
      );
    default:
      if (kind.startsWith("/")) throw bad(`missing interface name; did you mean device:${s}?`);
      throw bad(`unknown TPM interface "${kind}"; expected device:, swtpm: or mssim:`);
  }
}

function parseSocketConf(conf: string, bad: (why: string) => TpmUriError): SocketAddress {
  const seen = new Map<string, string>();
  if (conf !== "") {
    for (const part of conf.split(",")) {
      const eq = part.indexOf("=");
      if (eq < 0) throw bad(`"${part}" is not key=value (keys: ${SOCKET_KEYS.join(", ")})`);
      const key = part.slice(0, eq).trim();
      const value = part.slice(eq + 1).trim();
      if (!(SOCKET_KEYS as readonly string[]).includes(key)) {
        throw bad(`unknown key "${key}" in "${part}" (keys: ${SOCKET_KEYS.join(", ")})`);
      }
      if (seen.has(key)) throw bad(`"${key}" is given twice`);
      if (value === "") throw bad(`"${part}" has an empty value`);
      seen.set(key, value);
    }
  }
  const path = seen.get("path");
  if (path !== undefined) {
    if (seen.has("host") || seen.has("port")) throw bad(`path= cannot be combined with host= or port=`);
    return { path };
  }
  const host = seen.get("host") ?? DEFAULT_SOCKET_HOST;
  const portText = seen.get("port");
  let port = DEFAULT_SOCKET_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    // The control / platform channel is port + 1, so the data port must leave room for it.
    if (!(port >= 1 && port <= 65534)) {
      throw bad(`port=${portText} is not a usable port (1..65534; port + 1 is the control/platform port)`);
    }
  }
  return { host, port };
}

/** Canonical string: `device:/dev/tpmrm0`, `swtpm:host=H,port=P`, `swtpm:path=S`, `mssim:...`. */
export function formatTpmUri(uri: TpmUri): string {
  if (uri.kind === "device") return `device:${uri.path}`;
  return socketUri(uri.kind, "path" in uri ? { path: uri.path } : { host: uri.host, port: uri.port });
}

export interface OpenTransportOptions extends TransportOptions {
  /** mssim only: send POWER_ON/NV_ON on the platform port first (default true). */
  platform?: boolean;
  /** swtpm/mssim: keep the connection between commands (default true). */
  persistent?: boolean;
}

/** Open (lazily: nothing connects until the first send) the transport a TPM URI names. */
export function openTransport(uri: string | TpmUri, options: OpenTransportOptions = {}): Transport {
  const u = typeof uri === "string" ? parseTpmUri(uri) : uri;
  const { platform, ...common } = options;
  switch (u.kind) {
    case "device":
      return new DeviceTransport(u.path, common);
    case "swtpm":
      return new SwtpmTransport(addressOf(u), common);
    case "mssim":
      return new MssimTransport(addressOf(u), { ...common, ...(platform !== undefined ? { platform } : {}) });
  }
}

function addressOf(u: { kind: string } & SocketAddress): SocketAddress {
  return "path" in u ? { path: u.path } : { host: u.host, port: u.port };
}

/** The TPM named by the environment: TCTI, then TPM2TOOLS_TCTI; undefined when neither is set. */
export function tpmUriFromEnv(env: Readonly<Record<string, string | undefined>>): string | undefined {
  for (const name of ["TCTI", "TPM2TOOLS_TCTI"]) {
    const v = env[name]?.trim();
    if (v) return v;
  }
  return undefined;
}
