/**
 * TPM 2.0 constants (Part 2 §6), as `as const` objects keyed by the spec's names without their
 * prefix (TPM_ALG.SHA256, TPM_CC.Quote, TPM_RC.AUTH_FAIL), with a reverse lookup for display.
 */

/** Reverse lookup: the first key whose value is `value`. */
export function nameOf(table: Readonly<Record<string, number>>, value: number): string | undefined {
  let index = reverse.get(table);
  if (!index) {
    index = new Map();
    for (const [k, v] of Object.entries(table)) if (!index.has(v)) index.set(v, k);
    reverse.set(table, index);
  }
  return index.get(value);
}
const reverse = new WeakMap<object, Map<number, string>>();

/** "0x000b" style hex for unknown values in messages. */
export function hex(v: number, width = 4): string {
  return `0x${v.toString(16).padStart(width, "0")}`;
}

/** TPM_GENERATED_VALUE (Part 2 §6.2): "\xffTCG" at the start of every TPMS_ATTEST. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TPM_ALG_ID (Part 2 §6.3). */
export const TPM_ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CMAC: 0x003f,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** Digest sizes of the hash algorithms this library can name (Part 2 §10.1 TPMU_HA). */
export const DIGEST_SIZE: Readonly<Record<number, number>> = {
  [TPM_ALG.SHA1]: 20,
  [TPM_ALG.SHA256]: 32,
  [TPM_ALG.SHA384]: 48,
  [TPM_ALG.SHA512]: 64,
  [TPM_ALG.SM3_256]: 32,
  [TPM_ALG.SHA3_256]: 32,
  [TPM_ALG.SHA3_384]: 48,
  [TPM_ALG.SHA3_512]: 64,
};

/** TPM_ECC_CURVE (Part 2 §6.4). */
export const TPM_ECC_CURVE = {
  NONE: 0x0000,
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const;

/** TPM_CC (Part 2 §6.5.2): every command code of the spec's table, so traces can name them. */
export const TPM_CC = {
  NV_UndefineSpaceSpecial: 0x11f,
  EvictControl: 0x120,
  HierarchyControl: 0x121,
  NV_UndefineSpace: 0x122,
  ChangeEPS: 0x124,
  ChangePPS: 0x125,
  Clear: 0x126,
  ClearControl: 0x127,
  ClockSet: 0x128,
  HierarchyChangeAuth: 0x129,
  NV_DefineSpace: 0x12a,
  PCR_Allocate: 0x12b,
  PCR_SetAuthPolicy: 0x12c,
  PP_Commands: 0x12d,
  SetPrimaryPolicy: 0x12e,
  FieldUpgradeStart: 0x12f,
  ClockRateAdjust: 0x130,
  CreatePrimary: 0x131,
  NV_GlobalWriteLock: 0x132,
  GetCommandAuditDigest: 0x133,
  NV_Increment: 0x134,
  NV_SetBits: 0x135,
  NV_Extend: 0x136,
  NV_Write: 0x137,
  NV_WriteLock: 0x138,
  DictionaryAttackLockReset: 0x139,
  DictionaryAttackParameters: 0x13a,
  NV_ChangeAuth: 0x13b,
  PCR_Event: 0x13c,
  PCR_Reset: 0x13d,
  SequenceComplete: 0x13e,
  SetAlgorithmSet: 0x13f,
  SetCommandCodeAuditStatus: 0x140,
  FieldUpgradeData: 0x141,
  IncrementalSelfTest: 0x142,
  SelfTest: 0x143,
  Startup: 0x144,
  Shutdown: 0x145,
  StirRandom: 0x146,
  ActivateCredential: 0x147,
  Certify: 0x148,
  PolicyNV: 0x149,
  CertifyCreation: 0x14a,
  Duplicate: 0x14b,
  GetTime: 0x14c,
  GetSessionAuditDigest: 0x14d,
  NV_Read: 0x14e,
  NV_ReadLock: 0x14f,
  ObjectChangeAuth: 0x150,
  PolicySecret: 0x151,
  Rewrap: 0x152,
  Create: 0x153,
  ECDH_ZGen: 0x154,
  HMAC: 0x155,
  Import: 0x156,
  Load: 0x157,
  Quote: 0x158,
  RSA_Decrypt: 0x159,
  HMAC_Start: 0x15b,
  SequenceUpdate: 0x15c,
  Sign: 0x15d,
  Unseal: 0x15e,
  PolicySigned: 0x160,
  ContextLoad: 0x161,
  ContextSave: 0x162,
  ECDH_KeyGen: 0x163,
  EncryptDecrypt: 0x164,
  FlushContext: 0x165,
  LoadExternal: 0x167,
  MakeCredential: 0x168,
  NV_ReadPublic: 0x169,
  PolicyAuthorize: 0x16a,
  PolicyAuthValue: 0x16b,
  PolicyCommandCode: 0x16c,
  PolicyCounterTimer: 0x16d,
  PolicyCpHash: 0x16e,
  PolicyLocality: 0x16f,
  PolicyNameHash: 0x170,
  PolicyOR: 0x171,
  PolicyTicket: 0x172,
  ReadPublic: 0x173,
  RSA_Encrypt: 0x174,
  StartAuthSession: 0x176,
  VerifySignature: 0x177,
  ECC_Parameters: 0x178,
  FirmwareRead: 0x179,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  GetTestResult: 0x17c,
  Hash: 0x17d,
  PCR_Read: 0x17e,
  PolicyPCR: 0x17f,
  PolicyRestart: 0x180,
  ReadClock: 0x181,
  PCR_Extend: 0x182,
  PCR_SetAuthValue: 0x183,
  NV_Certify: 0x184,
  EventSequenceComplete: 0x185,
  HashSequenceStart: 0x186,
  PolicyPhysicalPresence: 0x187,
  PolicyDuplicationSelect: 0x188,
  PolicyGetDigest: 0x189,
  TestParms: 0x18a,
  Commit: 0x18b,
  PolicyPassword: 0x18c,
  ZGen_2Phase: 0x18d,
  EC_Ephemeral: 0x18e,
  PolicyNvWritten: 0x18f,
  PolicyTemplate: 0x190,
  CreateLoaded: 0x191,
  PolicyAuthorizeNV: 0x192,
  EncryptDecrypt2: 0x193,
  AC_GetCapability: 0x194,
  AC_Send: 0x195,
  Policy_AC_SendSelect: 0x196,
  CertifyX509: 0x197,
  ACT_SetTimeout: 0x198,
} as const;

/**
 * TPM_RC (Part 2 §6.6.3). Format-1 codes are listed without their parameter/handle/session number;
 * warnings with their 0x900 base. errors.ts decodes a raw code against this table.
 */
export const TPM_RC = {
  SUCCESS: 0x000,
  BAD_TAG: 0x01e,
  // format 0, RC_VER1 = 0x100
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  SEQUENCE: 0x103,
  PRIVATE: 0x10b,
  HMAC: 0x119,
  DISABLED: 0x120,
  EXCLUSIVE: 0x121,
  AUTH_TYPE: 0x124,
  AUTH_MISSING: 0x125,
  POLICY: 0x126,
  PCR: 0x127,
  PCR_CHANGED: 0x128,
  UPGRADE: 0x12d,
  TOO_MANY_CONTEXTS: 0x12e,
  AUTH_UNAVAILABLE: 0x12f,
  REBOOT: 0x130,
  UNBALANCED: 0x131,
  COMMAND_SIZE: 0x142,
  COMMAND_CODE: 0x143,
  AUTHSIZE: 0x144,
  AUTH_CONTEXT: 0x145,
  NV_RANGE: 0x146,
  NV_SIZE: 0x147,
  NV_LOCKED: 0x148,
  NV_AUTHORIZATION: 0x149,
  NV_UNINITIALIZED: 0x14a,
  NV_SPACE: 0x14b,
  NV_DEFINED: 0x14c,
  BAD_CONTEXT: 0x150,
  CPHASH: 0x151,
  PARENT: 0x152,
  NEEDS_TEST: 0x153,
  NO_RESULT: 0x154,
  SENSITIVE: 0x155,
  // format 1, RC_FMT1 = 0x080
  ASYMMETRIC: 0x081,
  ATTRIBUTES: 0x082,
  HASH: 0x083,
  VALUE: 0x084,
  HIERARCHY: 0x085,
  KEY_SIZE: 0x087,
  MGF: 0x088,
  MODE: 0x089,
  TYPE: 0x08a,
  HANDLE: 0x08b,
  KDF: 0x08c,
  RANGE: 0x08d,
  AUTH_FAIL: 0x08e,
  NONCE: 0x08f,
  PP: 0x090,
  SCHEME: 0x092,
  SIZE: 0x095,
  SYMMETRIC: 0x096,
  TAG: 0x097,
  SELECTOR: 0x098,
  INSUFFICIENT: 0x09a,
  SIGNATURE: 0x09b,
  KEY: 0x09c,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
  TICKET: 0x0a0,
  RESERVED_BITS: 0x0a1,
  BAD_AUTH: 0x0a2,
  EXPIRED: 0x0a3,
  POLICY_CC: 0x0a4,
  BINDING: 0x0a5,
  CURVE: 0x0a6,
  ECC_POINT: 0x0a7,
  // warnings, RC_WARN = 0x900
  CONTEXT_GAP: 0x901,
  OBJECT_MEMORY: 0x902,
  SESSION_MEMORY: 0x903,
  MEMORY: 0x904,
  SESSION_HANDLES: 0x905,
  OBJECT_HANDLES: 0x906,
  LOCALITY: 0x907,
  YIELDED: 0x908,
  CANCELED: 0x909,
  TESTING: 0x90a,
  REFERENCE_H0: 0x910,
  REFERENCE_H1: 0x911,
  REFERENCE_H2: 0x912,
  REFERENCE_H3: 0x913,
  REFERENCE_H4: 0x914,
  REFERENCE_H5: 0x915,
  REFERENCE_H6: 0x916,
  REFERENCE_S0: 0x918,
  REFERENCE_S1: 0x919,
  REFERENCE_S2: 0x91a,
  REFERENCE_S3: 0x91b,
  REFERENCE_S4: 0x91c,
  REFERENCE_S5: 0x91d,
  REFERENCE_S6: 0x91e,
  NV_RATE: 0x920,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  NV_UNAVAILABLE: 0x923,
} as const;

/** Format-1 modifiers: add to a format-1 code to point at parameter/handle/session n (Part 2 §6.6.3). */
export const RC_MODIFIER = {
  parameter: (n: number) => 0x040 | (n << 8),
  handle: (n: number) => n << 8,
  session: (n: number) => 0x800 | (n << 8),
} as const;

/** TPM_ST (Part 2 §6.9). */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
  FU_MANIFEST: 0x8029,
} as const;

/** TPM_SU (Part 2 §6.10): Startup / Shutdown types. */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPM_SE (Part 2 §6.11): session types. */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_CAP (Part 2 §6.12). */
export const TPM_CAP = {
  ALGS: 0x00000000,
  HANDLES: 0x00000001,
  COMMANDS: 0x00000002,
  PP_COMMANDS: 0x00000003,
  AUDIT_COMMANDS: 0x00000004,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
  PCR_PROPERTIES: 0x00000007,
  ECC_CURVES: 0x00000008,
  AUTH_POLICIES: 0x00000009,
  ACT: 0x0000000a,
  VENDOR_PROPERTY: 0x00000100,
} as const;

/** TPM_PT (Part 2 §6.13): fixed (0x100...) and variable (0x200...) properties. */
export const TPM_PT = {
  FAMILY_INDICATOR: 0x100,
  LEVEL: 0x101,
  REVISION: 0x102,
  DAY_OF_YEAR: 0x103,
  YEAR: 0x104,
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  VENDOR_STRING_2: 0x107,
  VENDOR_STRING_3: 0x108,
  VENDOR_STRING_4: 0x109,
  VENDOR_TPM_TYPE: 0x10a,
  FIRMWARE_VERSION_1: 0x10b,
  FIRMWARE_VERSION_2: 0x10c,
  INPUT_BUFFER: 0x10d,
  HR_TRANSIENT_MIN: 0x10e,
  HR_PERSISTENT_MIN: 0x10f,
  HR_LOADED_MIN: 0x110,
  ACTIVE_SESSIONS_MAX: 0x111,
  PCR_COUNT: 0x112,
  PCR_SELECT_MIN: 0x113,
  CONTEXT_GAP_MAX: 0x114,
  NV_COUNTERS_MAX: 0x116,
  NV_INDEX_MAX: 0x117,
  MEMORY: 0x118,
  CLOCK_UPDATE: 0x119,
  CONTEXT_HASH: 0x11a,
  CONTEXT_SYM: 0x11b,
  CONTEXT_SYM_SIZE: 0x11c,
  ORDERLY_COUNT: 0x11d,
  MAX_COMMAND_SIZE: 0x11e,
  MAX_RESPONSE_SIZE: 0x11f,
  MAX_DIGEST: 0x120,
  MAX_OBJECT_CONTEXT: 0x121,
  MAX_SESSION_CONTEXT: 0x122,
  PS_FAMILY_INDICATOR: 0x123,
  PS_LEVEL: 0x124,
  PS_REVISION: 0x125,
  PS_DAY_OF_YEAR: 0x126,
  PS_YEAR: 0x127,
  SPLIT_MAX: 0x128,
  TOTAL_COMMANDS: 0x129,
  LIBRARY_COMMANDS: 0x12a,
  VENDOR_COMMANDS: 0x12b,
  NV_BUFFER_MAX: 0x12c,
  MODES: 0x12d,
  MAX_CAP_BUFFER: 0x12e,
  PERMANENT: 0x200,
  STARTUP_CLEAR: 0x201,
  HR_NV_INDEX: 0x202,
  HR_LOADED: 0x203,
  HR_LOADED_AVAIL: 0x204,
  HR_ACTIVE: 0x205,
  HR_ACTIVE_AVAIL: 0x206,
  HR_TRANSIENT_AVAIL: 0x207,
  HR_PERSISTENT: 0x208,
  HR_PERSISTENT_AVAIL: 0x209,
  NV_COUNTERS: 0x20a,
  NV_COUNTERS_AVAIL: 0x20b,
  ALGORITHM_SET: 0x20c,
  LOADED_CURVES: 0x20d,
  LOCKOUT_COUNTER: 0x20e,
  MAX_AUTH_FAIL: 0x20f,
  LOCKOUT_INTERVAL: 0x210,
  LOCKOUT_RECOVERY: 0x211,
  NV_WRITE_RECOVERY: 0x212,
  AUDIT_COUNTER_0: 0x213,
  AUDIT_COUNTER_1: 0x214,
} as const;

/** TPM_PT_PCR (Part 2 §6.14). */
export const TPM_PT_PCR = {
  SAVE: 0x00,
  EXTEND_L0: 0x01,
  RESET_L0: 0x02,
  EXTEND_L1: 0x03,
  RESET_L1: 0x04,
  EXTEND_L2: 0x05,
  RESET_L2: 0x06,
  EXTEND_L3: 0x07,
  RESET_L3: 0x08,
  EXTEND_L4: 0x09,
  RESET_L4: 0x0a,
  NO_INCREMENT: 0x11,
  DRTM_RESET: 0x12,
  POLICY: 0x13,
  AUTH: 0x14,
} as const;

/** TPM_HT (Part 2 §7.2): the handle type in a handle's top byte. */
export const TPM_HT = {
  PCR: 0x00,
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
  AC: 0x90,
} as const;

/** The handle type of a handle. */
export function handleType(handle: number): number {
  return handle >>> 24;
}

/** TPM_RH / TPM_RS permanent handles (Part 2 §7.4). */
export const TPM_RH = {
  SRK: 0x40000000,
  OWNER: 0x40000001,
  REVOKE: 0x40000002,
  TRANSPORT: 0x40000003,
  OPERATOR: 0x40000004,
  ADMIN: 0x40000005,
  EK: 0x40000006,
  NULL: 0x40000007,
  UNASSIGNED: 0x40000008,
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
  PLATFORM_NV: 0x4000000d,
} as const;

/** TPM_RS_PW: the password authorization session handle. */
export const TPM_RS_PW = 0x40000009;

/** First handle of each handle range (Part 2 §7.3, TPM_HC). */
export const HANDLE_RANGE = {
  PCR_FIRST: 0x00000000,
  NV_INDEX_FIRST: 0x01000000,
  HMAC_SESSION_FIRST: 0x02000000,
  POLICY_SESSION_FIRST: 0x03000000,
  PERMANENT_FIRST: 0x40000000,
  TRANSIENT_FIRST: 0x80000000,
  PERSISTENT_FIRST: 0x81000000,
} as const;

/** EK NV indices and persistent handles (TCG EK Credential Profile 2.x §2.2.1.4, §2.2.1.5). */
export const EK_NV = {
  RSA2048_CERT: 0x01c00002,
  RSA2048_NONCE: 0x01c00003,
  RSA2048_TEMPLATE: 0x01c00004,
  ECC_P256_CERT: 0x01c0000a,
  ECC_P256_NONCE: 0x01c0000b,
  ECC_P256_TEMPLATE: 0x01c0000c,
  H1_RSA2048_CERT: 0x01c00012,
  H2_ECC_P256_CERT: 0x01c00014,
  H3_ECC_P384_CERT: 0x01c00016,
  H4_ECC_P521_CERT: 0x01c00018,
  H5_ECC_SM2_CERT: 0x01c0001a,
  H6_RSA3072_CERT: 0x01c0001c,
  H7_RSA4096_CERT: 0x01c0001e,
  CHAIN_FIRST: 0x01c00100,
  CHAIN_LAST: 0x01c001ff,
  PLATFORM_CERT: 0x01c08000,
} as const;

export const EK_PERSISTENT = {
  RSA2048: 0x81010001,
  ECC_P256: 0x8101000a,
  ECC_P384: 0x81010016,
} as const;

/** Minimum PCR select bitmap size for 24 PCRs (PC Client). */
export const PCR_SELECT_MIN = 3;
/** Implementation limits used as decoder maxima (Part 2 §10-§14 and the PC Client profile). */
export const LIMITS = {
  /** sizeof(TPMU_HA): the largest digest. */
  MAX_DIGEST: 64,
  /** TPM2B_DATA: sizeof(TPMT_HA). */
  MAX_DATA: 66,
  /** TPMS_PCR_SELECT.sizeofSelect maximum (PCR_SELECT_MAX). */
  PCR_SELECT_MAX: 4,
  HASH_COUNT: 16,
  /** TPML_PCR_SELECTION / TPML_DIGEST_VALUES limit (HASH_COUNT). */
  MAX_PCR_BANKS: 16,
  /** TPML_DIGEST: at most 8 digests (Part 2 §10.9.2). */
  MAX_DIGESTS: 8,
  MAX_RSA_KEY_BYTES: 512,
  MAX_ECC_KEY_BYTES: 128,
  MAX_SYM_KEY_BYTES: 32,
  MAX_SYM_BLOCK_SIZE: 16,
  MAX_SYM_DATA: 128,
  MAX_NV_BUFFER_SIZE: 2048,
  MAX_CONTEXT_SIZE: 5120,
  MAX_CAP_BUFFER: 1024,
  MAX_BUFFER: 1024,
  /** The TPM's command/response size ceiling this library accepts on the wire. */
  MAX_FRAME: 65536,
  LABEL_MAX_BUFFER: 48,
} as const;
