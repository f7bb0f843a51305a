/**
 * TPM 2.0 Part 2 structures, declared once as codecs. The TypeScript type of each is `Infer<typeof X>`.
 *
 * Names and field names are the spec's. Maxima come from the PC Client profile / reference
 * implementation (constants.ts LIMITS). TPMU_* unions are declared as `union(...)` members of the
 * TPMT_/TPMS_ structure that carries their selector.
 */
import { LIMITS, TPM_ALG, TPM_CAP, TPM_GENERATED_VALUE, TPM_ST } from "./constants.ts";
import {
  alias,
  bits,
  empty,
  fixed,
  type Infer,
  list,
  member,
  sized,
  sizedBytes,
  struct,
  TPMI_YES_NO,
  u16,
  u32,
  u64,
  union,
} from "./marshal.ts";

const A = TPM_ALG;

// ---- base and interface types (Part 2 §5, §6, §9) ------------------------------------------------

/** TPM_ALG_ID (Part 2 §6.3) and the TPMI_ALG_* interface types (§9), unrestricted on the wire. */
export const TPM_ALG_ID = alias("TPM_ALG_ID", 16);
export const TPMI_ALG_HASH = alias("TPMI_ALG_HASH", 16);
export const TPMI_ALG_SYM = alias("TPMI_ALG_SYM", 16);
export const TPMI_ALG_SYM_OBJECT = alias("TPMI_ALG_SYM_OBJECT", 16);
export const TPMI_ALG_SYM_MODE = alias("TPMI_ALG_SYM_MODE", 16);
export const TPMI_ALG_KDF = alias("TPMI_ALG_KDF", 16);
export const TPMI_ALG_SIG_SCHEME = alias("TPMI_ALG_SIG_SCHEME", 16);
export const TPMI_ALG_KEYEDHASH_SCHEME = alias("TPMI_ALG_KEYEDHASH_SCHEME", 16);
export const TPMI_ALG_ASYM_SCHEME = alias("TPMI_ALG_ASYM_SCHEME", 16);
export const TPMI_ALG_RSA_SCHEME = alias("TPMI_ALG_RSA_SCHEME", 16);
export const TPMI_ALG_RSA_DECRYPT = alias("TPMI_ALG_RSA_DECRYPT", 16);
export const TPMI_ALG_ECC_SCHEME = alias("TPMI_ALG_ECC_SCHEME", 16);
export const TPMI_ALG_PUBLIC = alias("TPMI_ALG_PUBLIC", 16);
/** TPM_KEY_BITS (Part 2 §5.3) as used by TPMI_RSA_KEY_BITS / TPMI_*_KEY_BITS. */
export const TPMI_RSA_KEY_BITS = alias("TPMI_RSA_KEY_BITS", 16);
export const TPM_KEY_BITS = alias("TPM_KEY_BITS", 16);
/** TPM_ECC_CURVE (Part 2 §6.4) / TPMI_ECC_CURVE. */
export const TPMI_ECC_CURVE = alias("TPMI_ECC_CURVE", 16);
/** TPM_CC (Part 2 §6.5). */
export const TPM_CC_T = alias("TPM_CC", 32);
/** TPM_ST (Part 2 §6.9) and TPMI_ST_* (§9.x). */
export const TPM_ST_T = alias("TPM_ST", 16);
export const TPMI_ST_COMMAND_TAG = alias("TPMI_ST_COMMAND_TAG", 16, [TPM_ST.NO_SESSIONS, TPM_ST.SESSIONS]);
/** TPM_SU (Part 2 §6.10). */
export const TPM_SU_T = alias("TPM_SU", 16);
/** TPM_SE (Part 2 §6.11). */
export const TPM_SE_T = alias("TPM_SE", 8);
/** TPM_CAP (Part 2 §6.12) and TPM_PT (§6.13). */
export const TPM_CAP_T = alias("TPM_CAP", 32);
export const TPM_PT_T = alias("TPM_PT", 32);
export const TPM_PT_PCR_T = alias("TPM_PT_PCR", 32);
/** TPM_HANDLE (Part 2 §7.1) and the TPMI_DH_/TPMI_RH_/TPMI_SH_ handle interfaces. */
export const TPM_HANDLE = alias("TPM_HANDLE", 32);
export const TPMI_DH_OBJECT = alias("TPMI_DH_OBJECT", 32);
export const TPMI_DH_PERSISTENT = alias("TPMI_DH_PERSISTENT", 32);
export const TPMI_DH_CONTEXT = alias("TPMI_DH_CONTEXT", 32);
export const TPMI_DH_SAVED = alias("TPMI_DH_SAVED", 32);
export const TPMI_DH_PCR = alias("TPMI_DH_PCR", 32);
export const TPMI_DH_ENTITY = alias("TPMI_DH_ENTITY", 32);
export const TPMI_SH_AUTH_SESSION = alias("TPMI_SH_AUTH_SESSION", 32);
export const TPMI_RH_HIERARCHY = alias("TPMI_RH_HIERARCHY", 32);
export const TPMI_RH_PROVISION = alias("TPMI_RH_PROVISION", 32);
export const TPMI_RH_NV_INDEX = alias("TPMI_RH_NV_INDEX", 32);
export const TPMI_RH_NV_AUTH = alias("TPMI_RH_NV_AUTH", 32);
/** TPM_GENERATED (Part 2 §6.2): must be TPM_GENERATED_VALUE. */
export const TPM_GENERATED = alias("TPM_GENERATED", 32, [TPM_GENERATED_VALUE]);

// ---- attributes (Part 2 §8), declared by bit position ---------------------------------------------

/** TPMA_ALGORITHM (Part 2 §8.2). */
export const TPMA_ALGORITHM = bits("TPMA_ALGORITHM", 32, {
  asymmetric: 0,
  symmetric: 1,
  hash: 2,
  object: 3,
  signing: 8,
  encrypting: 9,
  method: 10,
});

/** TPMA_OBJECT (Part 2 §8.3). */
export const TPMA_OBJECT = bits("TPMA_OBJECT", 32, {
  fixedTPM: 1,
  stClear: 2,
  fixedParent: 4,
  sensitiveDataOrigin: 5,
  userWithAuth: 6,
  adminWithPolicy: 7,
  noDA: 10,
  encryptedDuplication: 11,
  restricted: 16,
  decrypt: 17,
  sign: 18,
  x509sign: 19,
});

/** TPMA_SESSION (Part 2 §8.4). */
export const TPMA_SESSION = bits("TPMA_SESSION", 8, {
  continueSession: 0,
  auditExclusive: 1,
  auditReset: 2,
  decrypt: 5,
  encrypt: 6,
  audit: 7,
});

/** TPMA_LOCALITY (Part 2 §8.5): bits 0-4 select localities 0-4; values >31 are extended localities. */
export const TPMA_LOCALITY = bits("TPMA_LOCALITY", 8, {
  TPM_LOC_ZERO: 0,
  TPM_LOC_ONE: 1,
  TPM_LOC_TWO: 2,
  TPM_LOC_THREE: 3,
  TPM_LOC_FOUR: 4,
});

/** TPMA_PERMANENT (Part 2 §8.6). */
export const TPMA_PERMANENT = bits("TPMA_PERMANENT", 32, {
  ownerAuthSet: 0,
  endorsementAuthSet: 1,
  lockoutAuthSet: 2,
  disableClear: 8,
  inLockout: 9,
  tpmGeneratedEPS: 10,
});

/** TPMA_STARTUP_CLEAR (Part 2 §8.7). */
export const TPMA_STARTUP_CLEAR = bits("TPMA_STARTUP_CLEAR", 32, {
  phEnable: 0,
  shEnable: 1,
  ehEnable: 2,
  phEnableNV: 3,
  orderly: 31,
});

/** TPMA_CC (Part 2 §8.9): commandIndex is bits 15:0 and cHandles bits 27:25 (see `commandAttributes`). */
export const TPMA_CC = bits("TPMA_CC", 32, {
  nv: 22,
  extensive: 23,
  flushed: 24,
  rHandle: 28,
  V: 29,
});

/** The multi-bit fields of a TPMA_CC value. */
export function commandAttributes(v: number): { commandIndex: number; cHandles: number; Res: number } {
  return { commandIndex: v & 0xffff, cHandles: (v >>> 25) & 0x7, Res: (v >>> 30) & 0x3 };
}

/** TPMA_NV (Part 2 §13.4). TPM_NT (bits 7:4) is read with `nvIndexType`. */
export const TPMA_NV = bits("TPMA_NV", 32, {
  PPWRITE: 0,
  OWNERWRITE: 1,
  AUTHWRITE: 2,
  POLICYWRITE: 3,
  POLICY_DELETE: 10,
  WRITELOCKED: 11,
  WRITEALL: 12,
  WRITEDEFINE: 13,
  WRITE_STCLEAR: 14,
  GLOBALLOCK: 15,
  PPREAD: 16,
  OWNERREAD: 17,
  AUTHREAD: 18,
  POLICYREAD: 19,
  NO_DA: 25,
  ORDERLY: 26,
  CLEAR_STCLEAR: 27,
  READLOCKED: 28,
  WRITTEN: 29,
  PLATFORMCREATE: 30,
  READ_STCLEAR: 31,
});

/** TPM_NT (Part 2 §13.2), the index type in TPMA_NV bits 7:4. */
export function nvIndexType(attributes: number): number {
  return (attributes >>> 4) & 0xf;
}

// ---- buffers (Part 2 §10.4) ----------------------------------------------------------------------

/** TPM2B_DIGEST (Part 2 §10.4.2). */
export const TPM2B_DIGEST = sizedBytes("TPM2B_DIGEST", LIMITS.MAX_DIGEST);
/** TPM2B_DATA (Part 2 §10.4.3): at most sizeof(TPMT_HA). */
export const TPM2B_DATA = sizedBytes("TPM2B_DATA", LIMITS.MAX_DATA);
/** TPM2B_NONCE (Part 2 §10.4.4). */
export const TPM2B_NONCE = sizedBytes("TPM2B_NONCE", LIMITS.MAX_DIGEST);
/** TPM2B_AUTH (Part 2 §10.4.5). */
export const TPM2B_AUTH = sizedBytes("TPM2B_AUTH", LIMITS.MAX_DIGEST);
/** TPM2B_OPERAND (Part 2 §10.4.6). */
export const TPM2B_OPERAND = sizedBytes("TPM2B_OPERAND", LIMITS.MAX_DIGEST);
/** TPM2B_EVENT (Part 2 §10.4.7). */
export const TPM2B_EVENT = sizedBytes("TPM2B_EVENT", 1024);
/** TPM2B_MAX_BUFFER (Part 2 §10.4.8). */
export const TPM2B_MAX_BUFFER = sizedBytes("TPM2B_MAX_BUFFER", LIMITS.MAX_BUFFER);
/** TPM2B_MAX_NV_BUFFER (Part 2 §10.4.9). */
export const TPM2B_MAX_NV_BUFFER = sizedBytes("TPM2B_MAX_NV_BUFFER", LIMITS.MAX_NV_BUFFER_SIZE);
/** TPM2B_TIMEOUT (Part 2 §10.4.10). */
export const TPM2B_TIMEOUT = sizedBytes("TPM2B_TIMEOUT", 8);
/** TPM2B_IV (Part 2 §10.4.11). */
export const TPM2B_IV = sizedBytes("TPM2B_IV", LIMITS.MAX_SYM_BLOCK_SIZE);
/** TPM2B_NAME (Part 2 §10.5.3): a handle (4 bytes) or nameAlg ‖ digest. */
export const TPM2B_NAME = sizedBytes("TPM2B_NAME", 2 + LIMITS.MAX_DIGEST);

// ---- hashes (Part 2 §10.3) -----------------------------------------------------------------------

const digestOf = (n: number) => fixed(`BYTE[${n}]`, n);

/** TPMU_HA (Part 2 §10.3.1): the digest, its size fixed by hashAlg. */
const TPMU_HA = union("TPMU_HA", "hashAlg", {
  [A.SHA1]: digestOf(20),
  [A.SHA256]: digestOf(32),
  [A.SHA384]: digestOf(48),
  [A.SHA512]: digestOf(64),
  [A.SM3_256]: digestOf(32),
  [A.SHA3_256]: digestOf(32),
  [A.SHA3_384]: digestOf(48),
  [A.SHA3_512]: digestOf(64),
  [A.NULL]: empty,
}, A);

/** TPMT_HA (Part 2 §10.3.2). */
export const TPMT_HA = struct("TPMT_HA", { hashAlg: TPMI_ALG_HASH, digest: TPMU_HA });

// ---- PCR selections and tickets (Part 2 §10.6, §10.7) --------------------------------------------

/** TPMS_PCR_SELECT's sizeofSelect ‖ pcrSelect (Part 2 §10.6.1). */
export const TPMS_PCR_SELECT = sizedBytes("TPMS_PCR_SELECT", LIMITS.PCR_SELECT_MAX, 8);

/** TPMS_PCR_SELECTION (Part 2 §10.6.2). */
export const TPMS_PCR_SELECTION = struct("TPMS_PCR_SELECTION", { hash: TPMI_ALG_HASH, pcrSelect: TPMS_PCR_SELECT });

/** TPMT_TK_CREATION (Part 2 §10.7.3). */
export const TPMT_TK_CREATION = struct("TPMT_TK_CREATION", {
  tag: TPM_ST_T,
  hierarchy: TPMI_RH_HIERARCHY,
  digest: TPM2B_DIGEST,
});
/** TPMT_TK_VERIFIED (Part 2 §10.7.4). */
export const TPMT_TK_VERIFIED = struct("TPMT_TK_VERIFIED", {
  tag: TPM_ST_T,
  hierarchy: TPMI_RH_HIERARCHY,
  digest: TPM2B_DIGEST,
});
/** TPMT_TK_AUTH (Part 2 §10.7.5). */
export const TPMT_TK_AUTH = struct("TPMT_TK_AUTH", {
  tag: TPM_ST_T,
  hierarchy: TPMI_RH_HIERARCHY,
  digest: TPM2B_DIGEST,
});
/** TPMT_TK_HASHCHECK (Part 2 §10.7.6). */
export const TPMT_TK_HASHCHECK = struct("TPMT_TK_HASHCHECK", {
  tag: TPM_ST_T,
  hierarchy: TPMI_RH_HIERARCHY,
  digest: TPM2B_DIGEST,
});

// ---- capability building blocks (Part 2 §10.8, §10.9) --------------------------------------------

/** TPMS_ALG_PROPERTY (Part 2 §10.8.1). */
export const TPMS_ALG_PROPERTY = struct("TPMS_ALG_PROPERTY", { alg: TPM_ALG_ID, algProperties: TPMA_ALGORITHM });
/** TPMS_TAGGED_PROPERTY (Part 2 §10.8.2). */
export const TPMS_TAGGED_PROPERTY = struct("TPMS_TAGGED_PROPERTY", { property: TPM_PT_T, value: u32 });
/** TPMS_TAGGED_PCR_SELECT (Part 2 §10.8.3). */
export const TPMS_TAGGED_PCR_SELECT = struct("TPMS_TAGGED_PCR_SELECT", {
  tag: TPM_PT_PCR_T,
  pcrSelect: TPMS_PCR_SELECT,
});
/** TPMS_TAGGED_POLICY (Part 2 §10.8.4). */
export const TPMS_TAGGED_POLICY = struct("TPMS_TAGGED_POLICY", { handle: TPM_HANDLE, policyHash: TPMT_HA });
/** TPMS_ACT_DATA (Part 2 §10.8.5). */
export const TPMS_ACT_DATA = struct("TPMS_ACT_DATA", { handle: TPM_HANDLE, timeout: u32, attributes: u32 });

/** Per-list maxima for a 1024-byte MAX_CAP_BUFFER (Part 2 Table 4, reference implementation). */
const MAX_CAP_DATA = 1024 - 4 - 4;

/** TPML_CC (Part 2 §10.9.1). */
export const TPML_CC = list("TPML_CC", TPM_CC_T, MAX_CAP_DATA / 4);
/** TPML_CCA (Part 2 §10.9.2). */
export const TPML_CCA = list("TPML_CCA", TPMA_CC, MAX_CAP_DATA / 4);
/** TPML_ALG (Part 2 §10.9.3). */
export const TPML_ALG = list("TPML_ALG", TPM_ALG_ID, 64);
/** TPML_HANDLE (Part 2 §10.9.4). */
export const TPML_HANDLE = list("TPML_HANDLE", TPM_HANDLE, MAX_CAP_DATA / 4);
/** TPML_DIGEST (Part 2 §10.9.5): at most 8 (PCR_Read returns at most 8 digests). */
export const TPML_DIGEST = list("TPML_DIGEST", TPM2B_DIGEST, LIMITS.MAX_DIGESTS);
/** TPML_DIGEST_VALUES (Part 2 §10.9.6). */
export const TPML_DIGEST_VALUES = list("TPML_DIGEST_VALUES", TPMT_HA, LIMITS.HASH_COUNT);
/** TPML_PCR_SELECTION (Part 2 §10.9.7). */
export const TPML_PCR_SELECTION = list("TPML_PCR_SELECTION", TPMS_PCR_SELECTION, LIMITS.MAX_PCR_BANKS);
/** TPML_ALG_PROPERTY (Part 2 §10.9.8). */
export const TPML_ALG_PROPERTY = list("TPML_ALG_PROPERTY", TPMS_ALG_PROPERTY, Math.floor(MAX_CAP_DATA / 6));
/** TPML_TAGGED_TPM_PROPERTY (Part 2 §10.9.9). */
export const TPML_TAGGED_TPM_PROPERTY = list("TPML_TAGGED_TPM_PROPERTY", TPMS_TAGGED_PROPERTY, MAX_CAP_DATA / 8);
/** TPML_TAGGED_PCR_PROPERTY (Part 2 §10.9.10). */
export const TPML_TAGGED_PCR_PROPERTY = list(
  "TPML_TAGGED_PCR_PROPERTY",
  TPMS_TAGGED_PCR_SELECT,
  Math.floor(MAX_CAP_DATA / (4 + 1 + LIMITS.PCR_SELECT_MAX)),
);
/** TPML_ECC_CURVE (Part 2 §10.9.11). */
export const TPML_ECC_CURVE = list("TPML_ECC_CURVE", TPMI_ECC_CURVE, MAX_CAP_DATA / 2);
/** TPML_TAGGED_POLICY (Part 2 §10.9.12). */
export const TPML_TAGGED_POLICY = list("TPML_TAGGED_POLICY", TPMS_TAGGED_POLICY, Math.floor(MAX_CAP_DATA / 70));
/** TPML_ACT_DATA (Part 2 §10.9.13). */
export const TPML_ACT_DATA = list("TPML_ACT_DATA", TPMS_ACT_DATA, Math.floor(MAX_CAP_DATA / 12));

/** TPMU_CAPABILITIES (Part 2 §10.10.1), selected by TPMS_CAPABILITY_DATA.capability. */
const TPMU_CAPABILITIES = union("TPMU_CAPABILITIES", "capability", {
  [TPM_CAP.ALGS]: TPML_ALG_PROPERTY,
  [TPM_CAP.HANDLES]: TPML_HANDLE,
  [TPM_CAP.COMMANDS]: TPML_CCA,
  [TPM_CAP.PP_COMMANDS]: TPML_CC,
  [TPM_CAP.AUDIT_COMMANDS]: TPML_CC,
  [TPM_CAP.PCRS]: TPML_PCR_SELECTION,
  [TPM_CAP.TPM_PROPERTIES]: TPML_TAGGED_TPM_PROPERTY,
  [TPM_CAP.PCR_PROPERTIES]: TPML_TAGGED_PCR_PROPERTY,
  [TPM_CAP.ECC_CURVES]: TPML_ECC_CURVE,
  [TPM_CAP.AUTH_POLICIES]: TPML_TAGGED_POLICY,
  [TPM_CAP.ACT]: TPML_ACT_DATA,
}, TPM_CAP);

/** TPMS_CAPABILITY_DATA (Part 2 §10.10.2). */
export const TPMS_CAPABILITY_DATA = struct("TPMS_CAPABILITY_DATA", { capability: TPM_CAP_T, data: TPMU_CAPABILITIES });

/** TPMU_CAPABILITIES members by capability (MarshalError when the capability differs). */
export const capabilityAlgs = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.ALGS);
export const capabilityHandles = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.HANDLES);
export const capabilityCommands = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.COMMANDS);
export const capabilityPcrs = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.PCRS);
export const capabilityProperties = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.TPM_PROPERTIES);
export const capabilityPcrProperties = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.PCR_PROPERTIES);
export const capabilityEccCurves = member(TPMS_CAPABILITY_DATA, "data", TPM_CAP.ECC_CURVES);

// ---- clock and attestation (Part 2 §10.11, §10.12) -----------------------------------------------

/** TPMS_CLOCK_INFO (Part 2 §10.11.1). */
export const TPMS_CLOCK_INFO = struct("TPMS_CLOCK_INFO", {
  clock: u64,
  resetCount: u32,
  restartCount: u32,
  safe: TPMI_YES_NO,
});
/** TPMS_TIME_INFO (Part 2 §10.11.6). */
export const TPMS_TIME_INFO = struct("TPMS_TIME_INFO", { time: u64, clockInfo: TPMS_CLOCK_INFO });
/** TPMS_TIME_ATTEST_INFO (Part 2 §10.12.2). */
export const TPMS_TIME_ATTEST_INFO = struct("TPMS_TIME_ATTEST_INFO", { time: TPMS_TIME_INFO, firmwareVersion: u64 });
/** TPMS_CERTIFY_INFO (Part 2 §10.12.3). */
export const TPMS_CERTIFY_INFO = struct("TPMS_CERTIFY_INFO", { name: TPM2B_NAME, qualifiedName: TPM2B_NAME });
/** TPMS_QUOTE_INFO (Part 2 §10.12.4). */
export const TPMS_QUOTE_INFO = struct("TPMS_QUOTE_INFO", { pcrSelect: TPML_PCR_SELECTION, pcrDigest: TPM2B_DIGEST });
/** TPMS_COMMAND_AUDIT_INFO (Part 2 §10.12.5). */
export const TPMS_COMMAND_AUDIT_INFO = struct("TPMS_COMMAND_AUDIT_INFO", {
  auditCounter: u64,
  digestAlg: TPM_ALG_ID,
  auditDigest: TPM2B_DIGEST,
  commandDigest: TPM2B_DIGEST,
});
/** TPMS_SESSION_AUDIT_INFO (Part 2 §10.12.6). */
export const TPMS_SESSION_AUDIT_INFO = struct("TPMS_SESSION_AUDIT_INFO", {
  exclusiveSession: TPMI_YES_NO,
  sessionDigest: TPM2B_DIGEST,
});
/** TPMS_CREATION_INFO (Part 2 §10.12.7). */
export const TPMS_CREATION_INFO = struct("TPMS_CREATION_INFO", { objectName: TPM2B_NAME, creationHash: TPM2B_DIGEST });
/** TPMS_NV_CERTIFY_INFO (Part 2 §10.12.8). */
export const TPMS_NV_CERTIFY_INFO = struct("TPMS_NV_CERTIFY_INFO", {
  indexName: TPM2B_NAME,
  offset: u16,
  nvContents: TPM2B_MAX_NV_BUFFER,
});
/** TPMS_NV_DIGEST_CERTIFY_INFO (Part 2 §10.12.9). */
export const TPMS_NV_DIGEST_CERTIFY_INFO = struct("TPMS_NV_DIGEST_CERTIFY_INFO", {
  indexName: TPM2B_NAME,
  nvDigest: TPM2B_DIGEST,
});

/** TPMI_ST_ATTEST (Part 2 §10.12.10) selects TPMU_ATTEST (§10.12.11). */
export const TPMI_ST_ATTEST = alias("TPMI_ST_ATTEST", 16);
const TPMU_ATTEST = union("TPMU_ATTEST", "type", {
  [TPM_ST.ATTEST_CERTIFY]: TPMS_CERTIFY_INFO,
  [TPM_ST.ATTEST_CREATION]: TPMS_CREATION_INFO,
  [TPM_ST.ATTEST_QUOTE]: TPMS_QUOTE_INFO,
  [TPM_ST.ATTEST_COMMAND_AUDIT]: TPMS_COMMAND_AUDIT_INFO,
  [TPM_ST.ATTEST_SESSION_AUDIT]: TPMS_SESSION_AUDIT_INFO,
  [TPM_ST.ATTEST_TIME]: TPMS_TIME_ATTEST_INFO,
  [TPM_ST.ATTEST_NV]: TPMS_NV_CERTIFY_INFO,
  [TPM_ST.ATTEST_NV_DIGEST]: TPMS_NV_DIGEST_CERTIFY_INFO,
}, TPM_ST);

/** TPMS_ATTEST (Part 2 §10.12.12). */
export const TPMS_ATTEST = struct("TPMS_ATTEST", {
  magic: TPM_GENERATED,
  type: TPMI_ST_ATTEST,
  qualifiedSigner: TPM2B_NAME,
  extraData: TPM2B_DATA,
  clockInfo: TPMS_CLOCK_INFO,
  firmwareVersion: u64,
  attested: TPMU_ATTEST,
});

/** TPMU_ATTEST members by type (MarshalError when the TPMS_ATTEST is of another type). */
export const attestQuote = member(TPMS_ATTEST, "attested", TPM_ST.ATTEST_QUOTE);
export const attestCertify = member(TPMS_ATTEST, "attested", TPM_ST.ATTEST_CERTIFY);
export const attestCreation = member(TPMS_ATTEST, "attested", TPM_ST.ATTEST_CREATION);
export const attestNv = member(TPMS_ATTEST, "attested", TPM_ST.ATTEST_NV);
export const attestTime = member(TPMS_ATTEST, "attested", TPM_ST.ATTEST_TIME);
/** TPM2B_ATTEST (Part 2 §10.12.13). */
export const TPM2B_ATTEST = sized("TPM2B_ATTEST", TPMS_ATTEST);

// ---- authorization areas (Part 2 §10.13) ---------------------------------------------------------

/** TPMS_AUTH_COMMAND (Part 2 §10.13.2). */
export const TPMS_AUTH_COMMAND = struct("TPMS_AUTH_COMMAND", {
  sessionHandle: TPMI_SH_AUTH_SESSION,
  nonce: TPM2B_NONCE,
  sessionAttributes: TPMA_SESSION,
  hmac: TPM2B_AUTH,
});
/** TPMS_AUTH_RESPONSE (Part 2 §10.13.3). */
export const TPMS_AUTH_RESPONSE = struct("TPMS_AUTH_RESPONSE", {
  nonce: TPM2B_NONCE,
  sessionAttributes: TPMA_SESSION,
  hmac: TPM2B_AUTH,
});

// ---- symmetric (Part 2 §11.1) --------------------------------------------------------------------

/** TPMU_SYM_KEY_BITS (Part 2 §11.1.3); XOR carries a hash algorithm instead. */
const TPMU_SYM_KEY_BITS = union("TPMU_SYM_KEY_BITS", "algorithm", {
  [A.AES]: TPM_KEY_BITS,
  [A.SM4]: TPM_KEY_BITS,
  [A.CAMELLIA]: TPM_KEY_BITS,
  [A.XOR]: TPMI_ALG_HASH,
  [A.NULL]: empty,
}, A);
/** TPMU_SYM_MODE (Part 2 §11.1.4). */
const TPMU_SYM_MODE = union("TPMU_SYM_MODE", "algorithm", {
  [A.AES]: TPMI_ALG_SYM_MODE,
  [A.SM4]: TPMI_ALG_SYM_MODE,
  [A.CAMELLIA]: TPMI_ALG_SYM_MODE,
  [A.XOR]: empty,
  [A.NULL]: empty,
}, A);
/** TPMU_SYM_DETAILS (Part 2 §11.1.5): empty for every algorithm, kept so the layout matches the spec. */
const TPMU_SYM_DETAILS = union("TPMU_SYM_DETAILS", "algorithm", {
  [A.AES]: empty,
  [A.SM4]: empty,
  [A.CAMELLIA]: empty,
  [A.XOR]: empty,
  [A.NULL]: empty,
}, A);
/** The same unions restricted to TPMI_ALG_SYM_OBJECT (no XOR), for TPMT_SYM_DEF_OBJECT. */
const TPMU_SYM_KEY_BITS_OBJECT = union("TPMU_SYM_KEY_BITS", "algorithm", {
  [A.AES]: TPM_KEY_BITS,
  [A.SM4]: TPM_KEY_BITS,
  [A.CAMELLIA]: TPM_KEY_BITS,
  [A.NULL]: empty,
}, A);
const TPMU_SYM_MODE_OBJECT = union("TPMU_SYM_MODE", "algorithm", {
  [A.AES]: TPMI_ALG_SYM_MODE,
  [A.SM4]: TPMI_ALG_SYM_MODE,
  [A.CAMELLIA]: TPMI_ALG_SYM_MODE,
  [A.NULL]: empty,
}, A);
const TPMU_SYM_DETAILS_OBJECT = union("TPMU_SYM_DETAILS", "algorithm", {
  [A.AES]: empty,
  [A.SM4]: empty,
  [A.CAMELLIA]: empty,
  [A.NULL]: empty,
}, A);

/** TPMT_SYM_DEF (Part 2 §11.1.6). */
export const TPMT_SYM_DEF = struct("TPMT_SYM_DEF", {
  algorithm: TPMI_ALG_SYM,
  keyBits: TPMU_SYM_KEY_BITS,
  mode: TPMU_SYM_MODE,
  details: TPMU_SYM_DETAILS,
});

/** The key size and mode of a block-cipher TPMT_SYM_DEF (a session's symmetric), and XOR's hash. */
export const symKeyBits = member(TPMT_SYM_DEF, "keyBits", A.AES, A.SM4, A.CAMELLIA);
export const symMode = member(TPMT_SYM_DEF, "mode", A.AES, A.SM4, A.CAMELLIA);
export const symXorHash = member(TPMT_SYM_DEF, "keyBits", A.XOR);
/** TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): no XOR. */
export const TPMT_SYM_DEF_OBJECT = struct("TPMT_SYM_DEF_OBJECT", {
  algorithm: TPMI_ALG_SYM_OBJECT,
  keyBits: TPMU_SYM_KEY_BITS_OBJECT,
  mode: TPMU_SYM_MODE_OBJECT,
  details: TPMU_SYM_DETAILS_OBJECT,
});

/** The key size and mode of a TPMT_SYM_DEF_OBJECT that is not NULL. */
export const symObjectKeyBits = member(TPMT_SYM_DEF_OBJECT, "keyBits", A.AES, A.SM4, A.CAMELLIA);
export const symObjectMode = member(TPMT_SYM_DEF_OBJECT, "mode", A.AES, A.SM4, A.CAMELLIA);
/** TPM2B_SYM_KEY (Part 2 §11.1.8). */
export const TPM2B_SYM_KEY = sizedBytes("TPM2B_SYM_KEY", LIMITS.MAX_SYM_KEY_BYTES);
/** TPMS_SYMCIPHER_PARMS (Part 2 §11.1.9). */
export const TPMS_SYMCIPHER_PARMS = struct("TPMS_SYMCIPHER_PARMS", { sym: TPMT_SYM_DEF_OBJECT });
/** TPM2B_LABEL (Part 2 §11.1.10). */
export const TPM2B_LABEL = sizedBytes("TPM2B_LABEL", LIMITS.LABEL_MAX_BUFFER);
/** TPMS_DERIVE (Part 2 §11.1.11). */
export const TPMS_DERIVE = struct("TPMS_DERIVE", { label: TPM2B_LABEL, context: TPM2B_LABEL });
/** TPM2B_SENSITIVE_DATA (Part 2 §11.1.14). */
export const TPM2B_SENSITIVE_DATA = sizedBytes("TPM2B_SENSITIVE_DATA", LIMITS.MAX_SYM_DATA);
/** TPMS_SENSITIVE_CREATE (Part 2 §11.1.15). */
export const TPMS_SENSITIVE_CREATE = struct("TPMS_SENSITIVE_CREATE", {
  userAuth: TPM2B_AUTH,
  data: TPM2B_SENSITIVE_DATA,
});
/** TPM2B_SENSITIVE_CREATE (Part 2 §11.1.16). */
export const TPM2B_SENSITIVE_CREATE = sized("TPM2B_SENSITIVE_CREATE", TPMS_SENSITIVE_CREATE);

// ---- schemes (Part 2 §11.1.17 - §11.2) -----------------------------------------------------------

/** TPMS_SCHEME_HASH (Part 2 §11.1.17), also TPMS_SIG_SCHEME_* / TPMS_ENC_SCHEME_OAEP / TPMS_KEY_SCHEME_*. */
export const TPMS_SCHEME_HASH = struct("TPMS_SCHEME_HASH", { hashAlg: TPMI_ALG_HASH });
/** TPMS_SCHEME_ECDAA (Part 2 §11.1.18). */
export const TPMS_SCHEME_ECDAA = struct("TPMS_SCHEME_ECDAA", { hashAlg: TPMI_ALG_HASH, count: u16 });
/** TPMS_SCHEME_XOR (Part 2 §11.1.21). */
export const TPMS_SCHEME_XOR = struct("TPMS_SCHEME_XOR", { hashAlg: TPMI_ALG_HASH, kdf: TPMI_ALG_KDF });

/** TPMU_SCHEME_KEYEDHASH (Part 2 §11.1.22). */
const TPMU_SCHEME_KEYEDHASH = union("TPMU_SCHEME_KEYEDHASH", "scheme", {
  [A.HMAC]: TPMS_SCHEME_HASH,
  [A.XOR]: TPMS_SCHEME_XOR,
  [A.NULL]: empty,
}, A);
/** TPMT_KEYEDHASH_SCHEME (Part 2 §11.1.23). */
export const TPMT_KEYEDHASH_SCHEME = struct("TPMT_KEYEDHASH_SCHEME", {
  scheme: TPMI_ALG_KEYEDHASH_SCHEME,
  details: TPMU_SCHEME_KEYEDHASH,
});

/** The HMAC scheme's details of a TPMT_KEYEDHASH_SCHEME. */
export const keyedHashHmac = member(TPMT_KEYEDHASH_SCHEME, "details", A.HMAC);

/** Signature schemes shared by TPMU_SIG_SCHEME and TPMU_ASYM_SCHEME. */
const SIG_SCHEMES = {
  [A.RSASSA]: TPMS_SCHEME_HASH,
  [A.RSAPSS]: TPMS_SCHEME_HASH,
  [A.ECDSA]: TPMS_SCHEME_HASH,
  [A.ECDAA]: TPMS_SCHEME_ECDAA,
  [A.SM2]: TPMS_SCHEME_HASH,
  [A.ECSCHNORR]: TPMS_SCHEME_HASH,
};

/** The signing schemes of SIG_SCHEMES, for accessors. */
const SIG_ALGS = [A.RSASSA, A.RSAPSS, A.ECDSA, A.ECDAA, A.SM2, A.ECSCHNORR] as const;

/** TPMU_SIG_SCHEME (Part 2 §11.2.1.4). */
const TPMU_SIG_SCHEME = union("TPMU_SIG_SCHEME", "scheme", {
  ...SIG_SCHEMES,
  [A.HMAC]: TPMS_SCHEME_HASH,
  [A.NULL]: empty,
}, A);
/** TPMT_SIG_SCHEME (Part 2 §11.2.1.5). */
export const TPMT_SIG_SCHEME = struct("TPMT_SIG_SCHEME", { scheme: TPMI_ALG_SIG_SCHEME, details: TPMU_SIG_SCHEME });

/** The details (hashAlg, and ECDAA's count) of a TPMT_SIG_SCHEME that is not NULL. */
export const sigSchemeDetails = member(TPMT_SIG_SCHEME, "details", ...SIG_ALGS, A.HMAC);

/** TPMU_KDF_SCHEME (Part 2 §11.2.3.2). */
const TPMU_KDF_SCHEME = union("TPMU_KDF_SCHEME", "scheme", {
  [A.MGF1]: TPMS_SCHEME_HASH,
  [A.KDF1_SP800_56A]: TPMS_SCHEME_HASH,
  [A.KDF2]: TPMS_SCHEME_HASH,
  [A.KDF1_SP800_108]: TPMS_SCHEME_HASH,
  [A.NULL]: empty,
}, A);
/** TPMT_KDF_SCHEME (Part 2 §11.2.3.3). */
export const TPMT_KDF_SCHEME = struct("TPMT_KDF_SCHEME", { scheme: TPMI_ALG_KDF, details: TPMU_KDF_SCHEME });

/** The hash of a TPMT_KDF_SCHEME that is not NULL. */
export const kdfSchemeDetails = member(TPMT_KDF_SCHEME, "details", A.MGF1, A.KDF1_SP800_56A, A.KDF2, A.KDF1_SP800_108);

/** TPMU_ASYM_SCHEME (Part 2 §11.2.3.5). */
const asymScheme = (name: string) =>
  union(name, "scheme", {
    [A.ECDH]: TPMS_SCHEME_HASH,
    [A.ECMQV]: TPMS_SCHEME_HASH,
    ...SIG_SCHEMES,
    [A.RSAES]: empty,
    [A.OAEP]: TPMS_SCHEME_HASH,
    [A.NULL]: empty,
  }, A);

/** TPMT_ASYM_SCHEME (Part 2 §11.2.3.6). */
export const TPMT_ASYM_SCHEME = struct("TPMT_ASYM_SCHEME", {
  scheme: TPMI_ALG_ASYM_SCHEME,
  details: asymScheme("TPMU_ASYM_SCHEME"),
});
/** TPMT_RSA_SCHEME (Part 2 §11.2.4.2). */
export const TPMT_RSA_SCHEME = struct("TPMT_RSA_SCHEME", {
  scheme: TPMI_ALG_RSA_SCHEME,
  details: asymScheme("TPMU_ASYM_SCHEME"),
});
/** TPMT_RSA_DECRYPT (Part 2 §11.2.4.4). */
export const TPMT_RSA_DECRYPT = struct("TPMT_RSA_DECRYPT", {
  scheme: TPMI_ALG_RSA_DECRYPT,
  details: asymScheme("TPMU_ASYM_SCHEME"),
});
/** TPMT_ECC_SCHEME (Part 2 §11.2.5.6). */
export const TPMT_ECC_SCHEME = struct("TPMT_ECC_SCHEME", {
  scheme: TPMI_ALG_ECC_SCHEME,
  details: asymScheme("TPMU_ASYM_SCHEME"),
});

/**
 * The details of a key's TPMT_RSA_SCHEME or TPMT_ECC_SCHEME (same union) that carries a hash: every
 * scheme but NULL and RSAES.
 */
export const asymSchemeDetails = member(TPMT_ASYM_SCHEME, "details", A.ECDH, A.ECMQV, ...SIG_ALGS, A.OAEP);

// ---- RSA and ECC (Part 2 §11.2.4, §11.2.5) -------------------------------------------------------

/** TPM2B_PUBLIC_KEY_RSA (Part 2 §11.2.4.5). */
export const TPM2B_PUBLIC_KEY_RSA = sizedBytes("TPM2B_PUBLIC_KEY_RSA", LIMITS.MAX_RSA_KEY_BYTES);
/** TPM2B_PRIVATE_KEY_RSA (Part 2 §11.2.4.7): room for CRT values of the largest key. */
export const TPM2B_PRIVATE_KEY_RSA = sizedBytes("TPM2B_PRIVATE_KEY_RSA", (LIMITS.MAX_RSA_KEY_BYTES * 5) / 2);
/** TPM2B_ECC_PARAMETER (Part 2 §11.2.5.1). */
export const TPM2B_ECC_PARAMETER = sizedBytes("TPM2B_ECC_PARAMETER", LIMITS.MAX_ECC_KEY_BYTES);
/** TPMS_ECC_POINT (Part 2 §11.2.5.2). */
export const TPMS_ECC_POINT = struct("TPMS_ECC_POINT", { x: TPM2B_ECC_PARAMETER, y: TPM2B_ECC_PARAMETER });
/** TPM2B_ECC_POINT (Part 2 §11.2.5.3). */
export const TPM2B_ECC_POINT = sized("TPM2B_ECC_POINT", TPMS_ECC_POINT);

// ---- signatures (Part 2 §11.3) -------------------------------------------------------------------

/** TPMS_SIGNATURE_RSA (Part 2 §11.3.1). */
export const TPMS_SIGNATURE_RSA = struct("TPMS_SIGNATURE_RSA", { hash: TPMI_ALG_HASH, sig: TPM2B_PUBLIC_KEY_RSA });
/** TPMS_SIGNATURE_ECC (Part 2 §11.3.2). */
export const TPMS_SIGNATURE_ECC = struct("TPMS_SIGNATURE_ECC", {
  hash: TPMI_ALG_HASH,
  signatureR: TPM2B_ECC_PARAMETER,
  signatureS: TPM2B_ECC_PARAMETER,
});
/** TPMU_SIGNATURE (Part 2 §11.3.3). */
const TPMU_SIGNATURE = union("TPMU_SIGNATURE", "sigAlg", {
  [A.RSASSA]: TPMS_SIGNATURE_RSA,
  [A.RSAPSS]: TPMS_SIGNATURE_RSA,
  [A.ECDSA]: TPMS_SIGNATURE_ECC,
  [A.ECDAA]: TPMS_SIGNATURE_ECC,
  [A.SM2]: TPMS_SIGNATURE_ECC,
  [A.ECSCHNORR]: TPMS_SIGNATURE_ECC,
  [A.HMAC]: TPMT_HA,
  [A.NULL]: empty,
}, A);
/** TPMT_SIGNATURE (Part 2 §11.3.4). */
export const TPMT_SIGNATURE = struct("TPMT_SIGNATURE", { sigAlg: TPMI_ALG_SIG_SCHEME, signature: TPMU_SIGNATURE });

/** TPMU_SIGNATURE members by sigAlg (MarshalError for another algorithm). */
export const signatureRsa = member(TPMT_SIGNATURE, "signature", A.RSASSA, A.RSAPSS);
export const signatureEcc = member(TPMT_SIGNATURE, "signature", A.ECDSA, A.ECDAA, A.SM2, A.ECSCHNORR);
export const signatureHmac = member(TPMT_SIGNATURE, "signature", A.HMAC);
/** TPM2B_ENCRYPTED_SECRET (Part 2 §11.4.33): sizeof(TPMU_ENCRYPTED_SECRET). */
export const TPM2B_ENCRYPTED_SECRET = sizedBytes("TPM2B_ENCRYPTED_SECRET", LIMITS.MAX_RSA_KEY_BYTES);

// ---- public area (Part 2 §12.2) ------------------------------------------------------------------

/** TPMS_KEYEDHASH_PARMS (Part 2 §12.2.3.3). */
export const TPMS_KEYEDHASH_PARMS = struct("TPMS_KEYEDHASH_PARMS", { scheme: TPMT_KEYEDHASH_SCHEME });
/** TPMS_RSA_PARMS (Part 2 §12.2.3.5). */
export const TPMS_RSA_PARMS = struct("TPMS_RSA_PARMS", {
  symmetric: TPMT_SYM_DEF_OBJECT,
  scheme: TPMT_RSA_SCHEME,
  keyBits: TPMI_RSA_KEY_BITS,
  exponent: u32,
});
/** TPMS_ECC_PARMS (Part 2 §12.2.3.6). */
export const TPMS_ECC_PARMS = struct("TPMS_ECC_PARMS", {
  symmetric: TPMT_SYM_DEF_OBJECT,
  scheme: TPMT_ECC_SCHEME,
  curveID: TPMI_ECC_CURVE,
  kdf: TPMT_KDF_SCHEME,
});

/** TPMU_PUBLIC_PARMS (Part 2 §12.2.3.7). */
const TPMU_PUBLIC_PARMS = union("TPMU_PUBLIC_PARMS", "type", {
  [A.KEYEDHASH]: TPMS_KEYEDHASH_PARMS,
  [A.SYMCIPHER]: TPMS_SYMCIPHER_PARMS,
  [A.RSA]: TPMS_RSA_PARMS,
  [A.ECC]: TPMS_ECC_PARMS,
}, A);
/** TPMU_PUBLIC_ID (Part 2 §12.2.3.2). */
const TPMU_PUBLIC_ID = union("TPMU_PUBLIC_ID", "type", {
  [A.KEYEDHASH]: TPM2B_DIGEST,
  [A.SYMCIPHER]: TPM2B_DIGEST,
  [A.RSA]: TPM2B_PUBLIC_KEY_RSA,
  [A.ECC]: TPMS_ECC_POINT,
}, A);

/** TPMT_PUBLIC_PARMS (Part 2 §12.2.3.8). */
export const TPMT_PUBLIC_PARMS = struct("TPMT_PUBLIC_PARMS", { type: TPMI_ALG_PUBLIC, parameters: TPMU_PUBLIC_PARMS });

/** TPMT_PUBLIC (Part 2 §12.2.4). */
export const TPMT_PUBLIC = struct("TPMT_PUBLIC", {
  type: TPMI_ALG_PUBLIC,
  nameAlg: TPMI_ALG_HASH,
  objectAttributes: TPMA_OBJECT,
  authPolicy: TPM2B_DIGEST,
  parameters: TPMU_PUBLIC_PARMS,
  unique: TPMU_PUBLIC_ID,
});

/** TPMU_PUBLIC_PARMS and TPMU_PUBLIC_ID members by object type (MarshalError for another type). */
export const publicRsa = member(TPMT_PUBLIC, "parameters", A.RSA);
export const publicEcc = member(TPMT_PUBLIC, "parameters", A.ECC);
/** RSA or ECC parameters: both carry `symmetric` and `scheme`. */
export const publicAsym = member(TPMT_PUBLIC, "parameters", A.RSA, A.ECC);
export const publicKeyedHash = member(TPMT_PUBLIC, "parameters", A.KEYEDHASH);
export const publicSymcipher = member(TPMT_PUBLIC, "parameters", A.SYMCIPHER);
export const uniqueRsa = member(TPMT_PUBLIC, "unique", A.RSA);
export const uniqueEcc = member(TPMT_PUBLIC, "unique", A.ECC);
/** TPM2B_PUBLIC (Part 2 §12.2.5). */
export const TPM2B_PUBLIC = sized("TPM2B_PUBLIC", TPMT_PUBLIC);
/** TPM2B_TEMPLATE (Part 2 §12.2.6): a marshalled TPMT_PUBLIC. */
export const TPM2B_TEMPLATE = sizedBytes("TPM2B_TEMPLATE", 2 + 2 + 4 + 2 + 64 + 64 + 2 + LIMITS.MAX_RSA_KEY_BYTES);

// ---- private area (Part 2 §12.3) -----------------------------------------------------------------

/** TPM2B_PRIVATE_VENDOR_SPECIFIC (Part 2 §12.3.2.3). */
export const TPM2B_PRIVATE_VENDOR_SPECIFIC = sizedBytes("TPM2B_PRIVATE_VENDOR_SPECIFIC", 1280);
/** TPMU_SENSITIVE_COMPOSITE (Part 2 §12.3.2.3). */
const TPMU_SENSITIVE_COMPOSITE = union("TPMU_SENSITIVE_COMPOSITE", "sensitiveType", {
  [A.RSA]: TPM2B_PRIVATE_KEY_RSA,
  [A.ECC]: TPM2B_ECC_PARAMETER,
  [A.KEYEDHASH]: TPM2B_SENSITIVE_DATA,
  [A.SYMCIPHER]: TPM2B_SYM_KEY,
}, A);
/** TPMT_SENSITIVE (Part 2 §12.3.2.4). */
export const TPMT_SENSITIVE = struct("TPMT_SENSITIVE", {
  sensitiveType: TPMI_ALG_PUBLIC,
  authValue: TPM2B_AUTH,
  seedValue: TPM2B_DIGEST,
  sensitive: TPMU_SENSITIVE_COMPOSITE,
});
/** TPM2B_SENSITIVE (Part 2 §12.3.2.5); empty in LoadExternal of a public key. */
export const TPM2B_SENSITIVE = sized("TPM2B_SENSITIVE", TPMT_SENSITIVE, { optional: true });
/** TPM2B_PRIVATE (Part 2 §12.3.7): an opaque, TPM-wrapped blob. */
export const TPM2B_PRIVATE = sizedBytes("TPM2B_PRIVATE", 2048);
/** TPMS_ID_OBJECT (Part 2 §12.4.2): integrityHMAC then encIdentity (encIdentity is not size-prefixed). */
export const TPM2B_ID_OBJECT = sizedBytes("TPM2B_ID_OBJECT", 2 + LIMITS.MAX_DIGEST + 2 + LIMITS.MAX_DIGEST);

// ---- NV (Part 2 §13) -----------------------------------------------------------------------------

/** TPMS_NV_PUBLIC (Part 2 §13.5). */
export const TPMS_NV_PUBLIC = struct("TPMS_NV_PUBLIC", {
  nvIndex: TPMI_RH_NV_INDEX,
  nameAlg: TPMI_ALG_HASH,
  attributes: TPMA_NV,
  authPolicy: TPM2B_DIGEST,
  dataSize: u16,
});
/** TPM2B_NV_PUBLIC (Part 2 §13.6). */
export const TPM2B_NV_PUBLIC = sized("TPM2B_NV_PUBLIC", TPMS_NV_PUBLIC);

// ---- context (Part 2 §14) ------------------------------------------------------------------------

/** TPM2B_CONTEXT_DATA (Part 2 §14.4): opaque, TPM-protected. */
export const TPM2B_CONTEXT_DATA = sizedBytes("TPM2B_CONTEXT_DATA", LIMITS.MAX_CONTEXT_SIZE);
/** TPMS_CONTEXT (Part 2 §14.5). */
export const TPMS_CONTEXT = struct("TPMS_CONTEXT", {
  sequence: u64,
  savedHandle: TPMI_DH_SAVED,
  hierarchy: TPMI_RH_HIERARCHY,
  contextBlob: TPM2B_CONTEXT_DATA,
});

// ---- creation data (Part 2 §15) ------------------------------------------------------------------

/** TPMS_CREATION_DATA (Part 2 §15.1). */
export const TPMS_CREATION_DATA = struct("TPMS_CREATION_DATA", {
  pcrSelect: TPML_PCR_SELECTION,
  pcrDigest: TPM2B_DIGEST,
  locality: TPMA_LOCALITY,
  parentNameAlg: TPM_ALG_ID,
  parentName: TPM2B_NAME,
  parentQualifiedName: TPM2B_NAME,
  outsideInfo: TPM2B_DATA,
});
/** TPM2B_CREATION_DATA (Part 2 §15.2). */
export const TPM2B_CREATION_DATA = sized("TPM2B_CREATION_DATA", TPMS_CREATION_DATA);

// ---- inferred TypeScript types -------------------------------------------------------------------

export type TPMT_HA = Infer<typeof TPMT_HA>;
export type TPMS_PCR_SELECTION = Infer<typeof TPMS_PCR_SELECTION>;
export type TPMS_CAPABILITY_DATA = Infer<typeof TPMS_CAPABILITY_DATA>;
export type TPMS_TAGGED_PROPERTY = Infer<typeof TPMS_TAGGED_PROPERTY>;
export type TPMS_ATTEST = Infer<typeof TPMS_ATTEST>;
export type TPMS_CLOCK_INFO = Infer<typeof TPMS_CLOCK_INFO>;
export type TPMS_QUOTE_INFO = Infer<typeof TPMS_QUOTE_INFO>;
export type TPMS_CERTIFY_INFO = Infer<typeof TPMS_CERTIFY_INFO>;
export type TPMS_AUTH_COMMAND = Infer<typeof TPMS_AUTH_COMMAND>;
export type TPMS_AUTH_RESPONSE = Infer<typeof TPMS_AUTH_RESPONSE>;
export type TPMT_SYM_DEF = Infer<typeof TPMT_SYM_DEF>;
export type TPMT_SYM_DEF_OBJECT = Infer<typeof TPMT_SYM_DEF_OBJECT>;
export type TPMT_SIG_SCHEME = Infer<typeof TPMT_SIG_SCHEME>;
export type TPMT_SIGNATURE = Infer<typeof TPMT_SIGNATURE>;
export type TPMS_SIGNATURE_RSA = Infer<typeof TPMS_SIGNATURE_RSA>;
export type TPMS_SIGNATURE_ECC = Infer<typeof TPMS_SIGNATURE_ECC>;
export type TPMS_RSA_PARMS = Infer<typeof TPMS_RSA_PARMS>;
export type TPMS_ECC_PARMS = Infer<typeof TPMS_ECC_PARMS>;
export type TPMS_ECC_POINT = Infer<typeof TPMS_ECC_POINT>;
export type TPMT_PUBLIC = Infer<typeof TPMT_PUBLIC>;
export type TPMT_SENSITIVE = Infer<typeof TPMT_SENSITIVE>;
export type TPMS_SENSITIVE_CREATE = Infer<typeof TPMS_SENSITIVE_CREATE>;
export type TPMS_NV_PUBLIC = Infer<typeof TPMS_NV_PUBLIC>;
export type TPMS_CONTEXT = Infer<typeof TPMS_CONTEXT>;
export type TPMS_CREATION_DATA = Infer<typeof TPMS_CREATION_DATA>;
export type TPMT_TK_CREATION = Infer<typeof TPMT_TK_CREATION>;
