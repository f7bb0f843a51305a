/**
 * A simulator behind the swtpm protocol server, as a process of its own: for tests that must starve
 * the server of file descriptors (run it under a low `ulimit -n`) without touching the test runner's.
 * The TPM is started. Prints one JSON line {"port":P,"ctrlPort":C} on stdout once listening; warnings go to stderr.
 * Server options come as JSON in argv[0]. Stops when stdin closes.
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { SimTpm } from "../../simulator/sim_tpm.ts";
import { freshPersistent } from "../../simulator/state.ts";
import { startSwtpmServer, type SwtpmServerOptions } from "../../simulator/swtpm_server.ts";

// Deno sets up signal handling lazily, and panics when that finds no descriptor left: do it now.
process.on("SIGTERM", () => process.exit(143));
const options = JSON.parse(process.argv[2] ?? "{}") as SwtpmServerOptions;
const engine = new SimTpm(freshPersistent((n) => new Uint8Array(n).fill(7)), ALL_HANDLERS);
await engine.execute(Buffer.from("80010000000c000001440000", "hex")); // TPM2_Startup(CLEAR)
const server = await startSwtpmServer(engine, { ...options, warn: (m) => console.error(m) });
console.log(JSON.stringify({ port: server.port, ctrlPort: server.ctrlPort }));
process.stdin.on("data", () => {});
process.stdin.on("end", () => void server.close().then(() => process.exit(0)));
