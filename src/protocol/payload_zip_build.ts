/**
 * The tenant's side of the payload zip (keylime.md §8 step 6): what a tenant sends, read by payload_zip.ts.
 * Kept apart so that the agent, which only reads zips, never loads the zip writer.
 */
import { zipSync } from "fflate";
import { HOST_UNIX, S_IFREG } from "./payload_zip.ts";

/**
 * A payload zip of these files (path → bytes, or bytes and whether executable), with Unix
 * modes 0644/0755 so the agent's extraction keeps scripts runnable.
 */
export function buildPayloadZip(
  files: Record<string, Uint8Array | { data: Uint8Array; executable: boolean }>,
): Uint8Array {
  const input: Record<string, [Uint8Array, { os: number; attrs: number }]> = {};
  for (const [path, f] of Object.entries(files)) {
    const { data, executable } = f instanceof Uint8Array ? { data: f, executable: false } : f;
    input[path] = [data, { os: HOST_UNIX, attrs: (S_IFREG | (executable ? 0o755 : 0o644)) << 16 }];
  }
  return zipSync(input);
}
