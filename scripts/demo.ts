/**
 * `make demo` until the embedded simulator exists: start a private swtpm (free ports, fresh state,
 * EK certificates from swtpm_setup), then run `keylime-ts tpm info` and `keylime-ts tpm ek` against it.
 */
import { main } from "../src/main.ts";
import { startSwtpm, swtpmSkipReason } from "../tests/helpers/swtpm.ts";

const missing = swtpmSkipReason();
if (missing) {
  console.error(`demo: ${missing}`);
  process.exit(1);
}
console.error("demo: provisioning a private swtpm with EK certificates (swtpm_setup) ...");
const tpm = await startSwtpm({ transport: "tcp" });
try {
  console.log(`$ keylime-ts tpm info --tpm ${tpm.uri}`);
  await main(["tpm", "info", "--tpm", tpm.uri]);
  console.log(`\n$ keylime-ts tpm ek --alg rsa --tpm ${tpm.uri}`);
  await main(["tpm", "ek", "--alg", "rsa", "--tpm", tpm.uri]);
} finally {
  await tpm.stop();
}
