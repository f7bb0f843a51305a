/** Loads the captured wire vectors under tests/testdata/tpm-vectors. */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromHex as fromHexStrict } from "../../src/util/encoding.ts";
export { toHex } from "../../src/util/encoding.ts";

export const VECTOR_DIR = fileURLToPath(new URL("../testdata/tpm-vectors/", import.meta.url));

/** Hex of a vector file, which may spread it over lines. */
export function fromHex(s: string): Uint8Array {
  return fromHexStrict(s.replace(/\s+/g, ""));
}

export interface VectorPair {
  readonly name: string;
  readonly request: Uint8Array;
  readonly response: Uint8Array;
}

/** raw/<name>.req.hex + raw/<name>.rsp.hex */
export function rawPairs(): VectorPair[] {
  const dir = VECTOR_DIR + "raw/";
  return readdirSync(dir)
    .filter((f) => f.endsWith(".req.hex"))
    .sort()
    .map((f) => {
      const name = f.slice(0, -".req.hex".length);
      return {
        name,
        request: fromHex(readFileSync(dir + f, "utf8")),
        response: fromHex(readFileSync(dir + name + ".rsp.hex", "utf8")),
      };
    });
}

/** flow-trace/NNN_<Cmd>.req.bin + .rsp.bin, in capture order. */
export function tracePairs(): VectorPair[] {
  const dir = VECTOR_DIR + "flow-trace/";
  return readdirSync(dir)
    .filter((f) => f.endsWith(".req.bin"))
    .sort()
    .map((f) => {
      const name = f.slice(0, -".req.bin".length);
      return {
        name,
        request: new Uint8Array(readFileSync(dir + f)),
        response: new Uint8Array(readFileSync(dir + name + ".rsp.bin")),
      };
    });
}

/** A single hex file under raw/. */
export function rawHex(name: string): Uint8Array {
  return fromHex(readFileSync(VECTOR_DIR + "raw/" + name, "utf8"));
}
