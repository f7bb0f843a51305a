// Counts the leaf test cases in deno's JUnit report: a case whose name heads others ("grp" over
// "grp > one") is a group, not a test. Prints "N passed, N failed" (and ", N skipped").
import { readFileSync } from "node:fs";

const xml = readFileSync(process.argv[2], "utf8");
const decode = (s) =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
const cases = [...xml.matchAll(/<testcase name="([^"]*)" classname="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)]
  .map((m) => ({ name: decode(m[1]), body: m[4] ?? "" }));
if (cases.length === 0) {
  console.error("no test cases in the JUnit report");
  process.exit(1);
}
const names = new Set(cases.map((c) => c.name));
const isGroup = (n) => [...names].some((o) => o.startsWith(n + " > "));
let passed = 0, failed = 0, skipped = 0;
for (const c of cases) {
  const leafFailed = /<failure|<error/.test(c.body);
  if (isGroup(c.name)) {
    // A group fails on its own only when a hook (before/after) failed; count that once.
    if (leafFailed && !cases.some((o) => o.name.startsWith(c.name + " > ") && /<failure|<error/.test(o.body))) failed++;
    continue;
  }
  if (/<skipped/.test(c.body)) skipped++;
  else if (leafFailed) failed++;
  else passed++;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
