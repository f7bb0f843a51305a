/** The simulator's full command set. */
import { attest } from "./attest.ts";
import { capability } from "./capability.ts";
import { context } from "./context.ts";
import { hierarchy } from "./hierarchy.ts";
import { registry } from "./index.ts";
import { lifecycle } from "./lifecycle.ts";
import { nv } from "./nv.ts";
import { objects } from "./objects.ts";
import { pcr } from "./pcr.ts";
import { policy } from "./policy.ts";
import { session } from "./session.ts";
import { signing } from "./sign.ts";

export const ALL_HANDLERS = registry(
  lifecycle,
  capability,
  pcr,
  nv,
  hierarchy,
  objects,
  attest,
  session,
  policy,
  context,
  signing,
);
