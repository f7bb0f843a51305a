import { toHex } from "../util/encoding.ts";
/** How the CLI prints: text for people, --json for programs (bytes as hex, 64-bit values as strings). */

/** JSON with Uint8Array as lowercase hex, bigint as decimal strings, Map as objects, Date as ISO. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => {
      if (v instanceof Uint8Array) return toHex(v);
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Map) return Object.fromEntries(v);
      return v;
    },
    2,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(toJson(value) + "\n");
}

export function print(line = ""): void {
  process.stdout.write(line + "\n");
}

/** Progress for long-running steps: stderr, and only when a person is watching. */
export function progress(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${message}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`keylime-ts: warning: ${message}\n`);
}

export const hex = (b: Uint8Array) => toHex(b);

export const handleHex = (h: number) => `0x${h.toString(16).padStart(8, "0")}`;
