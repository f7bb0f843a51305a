/** The simulator's full command set. */
import { attest } from "./attest.ts";
import { context } from "./context.ts";
import { registry } from "./index.ts";
import { lifecycle } from "./lifecycle.ts";
import { objects } from "./objects.ts";
import { policy } from "./policy.ts";
import { session } from "./session.ts";

export const ALL_HANDLERS = registry(lifecycle, objects, attest, session, policy, context);
