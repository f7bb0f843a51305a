/**
 * Where the client's time goes: a V8 CPU profile (node:inspector) of Tpm.execute(GetRandom) against
 * swtpm over TCP, and of the same loop on a raw socket, summarised as self time per function.
 *
 *   deno run --allow-all bench/profile_client.ts [--iterations N] [--command getrandom|pcrread] [--top N]
 */
import { Session } from "node:inspector";
import process from "node:process";
import { Tpm } from "../src/tpm/client.ts";
import { GetRandom, PCR_Read } from "../src/tpm/commands.ts";
import { openTransport } from "../src/tpm/transport/uri.ts";
import { startSwtpm } from "../tests/helpers/swtpm.ts";
import { PCRS_0_7, plainCommand } from "./common.ts";
import { RawSocket } from "./latency.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function post<T>(s: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    s.post(method, params ?? {}, (err: Error | null, r: unknown) => (err ? reject(err) : resolve(r as T)))
  );
}

function label(cf: CallFrame): string {
  const file = cf.url.replace(/^file:\/\/.*?\/(src|bench|tests|node_modules)\//, "$1/").replace(/^ext:/, "ext:");
  return `${cf.functionName || "(anonymous)"} ${file ? `${file}:${cf.lineNumber + 1}` : ""}`.trim();
}

/** Self and inclusive time per function label, in µs per operation. */
function summarise(p: Profile, ops: number, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  let all = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!)!;
    all += dt;
    const name = label(node.callFrame);
    if (name === "(idle)" || name === "(program)" || name === "(garbage collector)") {
      self.set(name, (self.get(name) ?? 0) + dt);
      continue;
    }
    busy += dt;
    self.set(name, (self.get(name) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const l = label(byId.get(id)!.callFrame);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + dt);
    }
  }
  const per = (us: number) => (us / ops).toFixed(2).padStart(7);
  const lines = [
    `  wall ${(all / ops).toFixed(1)} us/op, JS busy ${(busy / ops).toFixed(1)} us/op ` +
    `(idle ${((self.get("(idle)") ?? 0) / ops).toFixed(1)}, program ${
      ((self.get("(program)") ?? 0) / ops).toFixed(1)
    }, ` +
    `GC ${((self.get("(garbage collector)") ?? 0) / ops).toFixed(1)})`,
    "  self us/op   function",
    ...[...self].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top).map(
      ([k, v]) => `  ${per(v)}    ${k}`,
    ),
    "  incl us/op   function",
    ...[...total].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `  ${per(v)}    ${k}`),
  ];
  return lines.join("\n");
}

async function profiled(s: Session, ops: number, fn: () => Promise<unknown>): Promise<Profile> {
  for (let i = 0; i < 500; i++) await fn(); // warm-up, JIT
  await post(s, "Profiler.setSamplingInterval", { interval: 20 });
  await post(s, "Profiler.start");
  for (let i = 0; i < ops; i++) await fn();
  const { profile } = await post<{ profile: Profile }>(s, "Profiler.stop");
  return profile;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, dflt: string) => {
    const i = argv.indexOf(name);
    return i >= 0 && argv[i + 1] ? argv[i + 1]! : dflt;
  };
  const ops = Number(opt("--iterations", "20000"));
  const top = Number(opt("--top", "25"));
  const which = opt("--command", "getrandom");
  const inst = await startSwtpm({ transport: "tcp", provision: false });
  const s = new Session();
  s.connect();
  try {
    await post(s, "Profiler.enable");
    const tpm = new Tpm(openTransport(inst.uri));
    const pcrArgs = { pcrSelectionIn: PCRS_0_7 };
    const randomArgs = { bytesRequested: 32 };
    const [def, run, command] = which === "pcrread"
      ? [PCR_Read, () => tpm.execute(PCR_Read, pcrArgs), plainCommand(PCR_Read, pcrArgs)] as const
      : [GetRandom, () => tpm.execute(GetRandom, randomArgs), plainCommand(GetRandom, randomArgs)] as const;

    const clientProfile = await profiled(s, ops, run);
    await tpm.close();
    const raw = await RawSocket.connect({ host: "127.0.0.1", port: inst.port! });
    const rawProfile = await profiled(s, ops, () => raw.exchange(command));
    await raw.close();

    console.log(`Tpm.execute(${def.name}) over swtpm TCP, ${ops} ops, 20 us sampling`);
    console.log(summarise(clientProfile, ops, top));
    console.log(`\nraw socket exchange, ${ops} ops`);
    console.log(summarise(rawProfile, ops, top));
  } finally {
    s.disconnect();
    await inst.stop();
  }
}

try {
  await main();
} catch (e) {
  console.error(e);
  process.exitCode = 1;
}
process.exit(process.exitCode ?? 0);
