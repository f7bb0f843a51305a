/**
 * Part 3 commands, declared once. Parameter names are the spec's (Part 3 command tables).
 * `COMMANDS` indexes them by command code for parsers that must know the handle count.
 */
import { type AnyCommand, command } from "./command.ts";
import { TPM_CC } from "./constants.ts";
import { i32, TPMI_YES_NO, u16, u32 } from "./marshal.ts";
import {
  TPM2B_ATTEST,
  TPM2B_AUTH,
  TPM2B_CREATION_DATA,
  TPM2B_DATA,
  TPM2B_DIGEST,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_MAX_BUFFER,
  TPM2B_MAX_NV_BUFFER,
  TPM2B_NAME,
  TPM2B_NONCE,
  TPM2B_NV_PUBLIC,
  TPM2B_PRIVATE,
  TPM2B_PUBLIC,
  TPM2B_SENSITIVE,
  TPM2B_SENSITIVE_CREATE,
  TPM2B_SENSITIVE_DATA,
  TPM2B_TIMEOUT,
  TPM_CAP_T,
  TPM_CC_T,
  TPM_SE_T,
  TPM_SU_T,
  TPMI_ALG_HASH,
  TPMI_DH_CONTEXT,
  TPMI_DH_PERSISTENT,
  TPMI_RH_HIERARCHY,
  TPML_DIGEST,
  TPML_DIGEST_VALUES,
  TPML_PCR_SELECTION,
  TPMS_CAPABILITY_DATA,
  TPMS_CONTEXT,
  TPMS_TIME_INFO,
  TPMT_PUBLIC_PARMS,
  TPMT_SIG_SCHEME,
  TPMT_SIGNATURE,
  TPMT_SYM_DEF,
  TPMT_TK_AUTH,
  TPMT_TK_CREATION,
  TPMT_TK_HASHCHECK,
  TPMT_TK_VERIFIED,
} from "./structures.ts";

// ---- start-up and testing (Part 3 §9, §10) -------------------------------------------------------

/** TPM2_Startup (Part 3 §9.3). */
export const Startup = command("Startup", TPM_CC.Startup, { params: { startupType: TPM_SU_T } });

/** TPM2_Shutdown (Part 3 §9.4). */
export const Shutdown = command("Shutdown", TPM_CC.Shutdown, { params: { shutdownType: TPM_SU_T } });

/** TPM2_SelfTest (Part 3 §10.2). */
export const SelfTest = command("SelfTest", TPM_CC.SelfTest, { params: { fullTest: TPMI_YES_NO } });

// ---- sessions and policy (Part 3 §11, §23) -------------------------------------------------------

/** TPM2_StartAuthSession (Part 3 §11.1). */
export const StartAuthSession = command("StartAuthSession", TPM_CC.StartAuthSession, {
  handles: { tpmKey: "none", bind: "none" },
  params: {
    nonceCaller: TPM2B_NONCE,
    encryptedSalt: TPM2B_ENCRYPTED_SECRET,
    sessionType: TPM_SE_T,
    symmetric: TPMT_SYM_DEF,
    authHash: TPMI_ALG_HASH,
  },
  response: { handle: "sessionHandle", params: { nonceTPM: TPM2B_NONCE } },
});

/** TPM2_PolicyRestart (Part 3 §11.2). */
export const PolicyRestart = command("PolicyRestart", TPM_CC.PolicyRestart, {
  handles: { sessionHandle: "none" },
});

/** TPM2_PolicySecret (Part 3 §23.4). */
export const PolicySecret = command("PolicySecret", TPM_CC.PolicySecret, {
  handles: { authHandle: "user", policySession: "none" },
  params: { nonceTPM: TPM2B_NONCE, cpHashA: TPM2B_DIGEST, policyRef: TPM2B_NONCE, expiration: i32 },
  response: { params: { timeout: TPM2B_TIMEOUT, policyTicket: TPMT_TK_AUTH } },
});

/** TPM2_PolicyOR (Part 3 §23.6). */
export const PolicyOR = command("PolicyOR", TPM_CC.PolicyOR, {
  handles: { policySession: "none" },
  params: { pHashList: TPML_DIGEST },
});

/** TPM2_PolicyPCR (Part 3 §23.7). */
export const PolicyPCR = command("PolicyPCR", TPM_CC.PolicyPCR, {
  handles: { policySession: "none" },
  params: { pcrDigest: TPM2B_DIGEST, pcrs: TPML_PCR_SELECTION },
});

/** TPM2_PolicyCommandCode (Part 3 §23.11). */
export const PolicyCommandCode = command("PolicyCommandCode", TPM_CC.PolicyCommandCode, {
  handles: { policySession: "none" },
  params: { code: TPM_CC_T },
});

/** TPM2_PolicyAuthValue (Part 3 §23.17). */
export const PolicyAuthValue = command("PolicyAuthValue", TPM_CC.PolicyAuthValue, {
  handles: { policySession: "none" },
});

/** TPM2_PolicyPassword (Part 3 §23.18). */
export const PolicyPassword = command("PolicyPassword", TPM_CC.PolicyPassword, {
  handles: { policySession: "none" },
});

/** TPM2_PolicyGetDigest (Part 3 §23.19). */
export const PolicyGetDigest = command("PolicyGetDigest", TPM_CC.PolicyGetDigest, {
  handles: { policySession: "none" },
  response: { params: { policyDigest: TPM2B_DIGEST } },
});

// ---- objects (Part 3 §12, §24) -------------------------------------------------------------------

const creationParams = {
  inSensitive: TPM2B_SENSITIVE_CREATE,
  inPublic: TPM2B_PUBLIC,
  outsideInfo: TPM2B_DATA,
  creationPCR: TPML_PCR_SELECTION,
};

/** TPM2_Create (Part 3 §12.1). */
export const Create = command("Create", TPM_CC.Create, {
  handles: { parentHandle: "user" },
  params: creationParams,
  response: {
    params: {
      outPrivate: TPM2B_PRIVATE,
      outPublic: TPM2B_PUBLIC,
      creationData: TPM2B_CREATION_DATA,
      creationHash: TPM2B_DIGEST,
      creationTicket: TPMT_TK_CREATION,
    },
  },
});

/** TPM2_Load (Part 3 §12.2). */
export const Load = command("Load", TPM_CC.Load, {
  handles: { parentHandle: "user" },
  params: { inPrivate: TPM2B_PRIVATE, inPublic: TPM2B_PUBLIC },
  response: { handle: "objectHandle", params: { name: TPM2B_NAME } },
});

/** TPM2_LoadExternal (Part 3 §12.3). */
export const LoadExternal = command("LoadExternal", TPM_CC.LoadExternal, {
  params: { inPrivate: TPM2B_SENSITIVE, inPublic: TPM2B_PUBLIC, hierarchy: TPMI_RH_HIERARCHY },
  response: { handle: "objectHandle", params: { name: TPM2B_NAME } },
});

/** TPM2_ReadPublic (Part 3 §12.4). */
export const ReadPublic = command("ReadPublic", TPM_CC.ReadPublic, {
  handles: { objectHandle: "none" },
  response: { params: { outPublic: TPM2B_PUBLIC, name: TPM2B_NAME, qualifiedName: TPM2B_NAME } },
});

/** TPM2_ActivateCredential (Part 3 §12.5). */
export const ActivateCredential = command("ActivateCredential", TPM_CC.ActivateCredential, {
  handles: { activateHandle: "admin", keyHandle: "user" },
  params: { credentialBlob: TPM2B_ID_OBJECT, secret: TPM2B_ENCRYPTED_SECRET },
  response: { params: { certInfo: TPM2B_DIGEST } },
});

/** TPM2_MakeCredential (Part 3 §12.6). */
export const MakeCredential = command("MakeCredential", TPM_CC.MakeCredential, {
  handles: { handle: "none" },
  params: { credential: TPM2B_DIGEST, objectName: TPM2B_NAME },
  response: { params: { credentialBlob: TPM2B_ID_OBJECT, secret: TPM2B_ENCRYPTED_SECRET } },
});

/** TPM2_CreatePrimary (Part 3 §24.1). */
export const CreatePrimary = command("CreatePrimary", TPM_CC.CreatePrimary, {
  handles: { primaryHandle: "user" },
  params: creationParams,
  response: {
    handle: "objectHandle",
    params: {
      outPublic: TPM2B_PUBLIC,
      creationData: TPM2B_CREATION_DATA,
      creationHash: TPM2B_DIGEST,
      creationTicket: TPMT_TK_CREATION,
      name: TPM2B_NAME,
    },
  },
});

/** TPM2_Clear (Part 3 §24.6). */
export const Clear = command("Clear", TPM_CC.Clear, { handles: { authHandle: "user" } });

/** TPM2_HierarchyChangeAuth (Part 3 §24.8). */
export const HierarchyChangeAuth = command("HierarchyChangeAuth", TPM_CC.HierarchyChangeAuth, {
  handles: { authHandle: "user" },
  params: { newAuth: TPM2B_AUTH },
});

/** TPM2_DictionaryAttackLockReset (Part 3 §25.2). */
export const DictionaryAttackLockReset = command("DictionaryAttackLockReset", TPM_CC.DictionaryAttackLockReset, {
  handles: { lockHandle: "user" },
});

// ---- random, hash, signatures (Part 3 §16, §17, §20) ---------------------------------------------

/** TPM2_GetRandom (Part 3 §16.1). */
export const GetRandom = command("GetRandom", TPM_CC.GetRandom, {
  params: { bytesRequested: u16 },
  response: { params: { randomBytes: TPM2B_DIGEST } },
});

/** TPM2_StirRandom (Part 3 §16.2). */
export const StirRandom = command("StirRandom", TPM_CC.StirRandom, { params: { inData: TPM2B_SENSITIVE_DATA } });

/** TPM2_Hash (Part 3 §15.4). */
export const Hash = command("Hash", TPM_CC.Hash, {
  params: { data: TPM2B_MAX_BUFFER, hashAlg: TPMI_ALG_HASH, hierarchy: TPMI_RH_HIERARCHY },
  response: { params: { outHash: TPM2B_DIGEST, validation: TPMT_TK_HASHCHECK } },
});

/** TPM2_VerifySignature (Part 3 §20.1). */
export const VerifySignature = command("VerifySignature", TPM_CC.VerifySignature, {
  handles: { keyHandle: "none" },
  params: { digest: TPM2B_DIGEST, signature: TPMT_SIGNATURE },
  response: { params: { validation: TPMT_TK_VERIFIED } },
});

/** TPM2_Sign (Part 3 §20.2). */
export const Sign = command("Sign", TPM_CC.Sign, {
  handles: { keyHandle: "user" },
  params: { digest: TPM2B_DIGEST, inScheme: TPMT_SIG_SCHEME, validation: TPMT_TK_HASHCHECK },
  response: { params: { signature: TPMT_SIGNATURE } },
});

// ---- attestation (Part 3 §18) --------------------------------------------------------------------

/** TPM2_Certify (Part 3 §18.2). */
export const Certify = command("Certify", TPM_CC.Certify, {
  handles: { objectHandle: "admin", signHandle: "user" },
  params: { qualifyingData: TPM2B_DATA, inScheme: TPMT_SIG_SCHEME },
  response: { params: { certifyInfo: TPM2B_ATTEST, signature: TPMT_SIGNATURE } },
});

/** TPM2_Quote (Part 3 §18.4). */
export const Quote = command("Quote", TPM_CC.Quote, {
  handles: { signHandle: "user" },
  params: { qualifyingData: TPM2B_DATA, inScheme: TPMT_SIG_SCHEME, PCRselect: TPML_PCR_SELECTION },
  response: { params: { quoted: TPM2B_ATTEST, signature: TPMT_SIGNATURE } },
});

// ---- PCRs (Part 3 §22) ---------------------------------------------------------------------------

/** TPM2_PCR_Extend (Part 3 §22.2). */
export const PCR_Extend = command("PCR_Extend", TPM_CC.PCR_Extend, {
  handles: { pcrHandle: "user" },
  params: { digests: TPML_DIGEST_VALUES },
});

/** TPM2_PCR_Read (Part 3 §22.4). */
export const PCR_Read = command("PCR_Read", TPM_CC.PCR_Read, {
  params: { pcrSelectionIn: TPML_PCR_SELECTION },
  response: { params: { pcrUpdateCounter: u32, pcrSelectionOut: TPML_PCR_SELECTION, pcrValues: TPML_DIGEST } },
});

/** TPM2_PCR_Reset (Part 3 §22.8). */
export const PCR_Reset = command("PCR_Reset", TPM_CC.PCR_Reset, { handles: { pcrHandle: "user" } });

// ---- context management (Part 3 §28) -------------------------------------------------------------

/** TPM2_ContextSave (Part 3 §28.2). */
export const ContextSave = command("ContextSave", TPM_CC.ContextSave, {
  handles: { saveHandle: "none" },
  response: { params: { context: TPMS_CONTEXT } },
});

/** TPM2_ContextLoad (Part 3 §28.3). */
export const ContextLoad = command("ContextLoad", TPM_CC.ContextLoad, {
  params: { context: TPMS_CONTEXT },
  response: { handle: "loadedHandle" },
});

/** TPM2_FlushContext (Part 3 §28.4): flushHandle is a parameter, not a handle. */
export const FlushContext = command("FlushContext", TPM_CC.FlushContext, { params: { flushHandle: TPMI_DH_CONTEXT } });

/** TPM2_EvictControl (Part 3 §28.5). */
export const EvictControl = command("EvictControl", TPM_CC.EvictControl, {
  handles: { auth: "user", objectHandle: "none" },
  params: { persistentHandle: TPMI_DH_PERSISTENT },
});

// ---- clocks and capabilities (Part 3 §29, §30) ---------------------------------------------------

/** TPM2_ReadClock (Part 3 §29.1). */
export const ReadClock = command("ReadClock", TPM_CC.ReadClock, {
  response: { params: { currentTime: TPMS_TIME_INFO } },
});

/** TPM2_GetCapability (Part 3 §30.2). */
export const GetCapability = command("GetCapability", TPM_CC.GetCapability, {
  params: { capability: TPM_CAP_T, property: u32, propertyCount: u32 },
  response: { params: { moreData: TPMI_YES_NO, capabilityData: TPMS_CAPABILITY_DATA } },
});

/** TPM2_TestParms (Part 3 §30.3). */
export const TestParms = command("TestParms", TPM_CC.TestParms, { params: { parameters: TPMT_PUBLIC_PARMS } });

// ---- NV (Part 3 §31) -----------------------------------------------------------------------------

/** TPM2_NV_DefineSpace (Part 3 §31.3). */
export const NV_DefineSpace = command("NV_DefineSpace", TPM_CC.NV_DefineSpace, {
  handles: { authHandle: "user" },
  params: { auth: TPM2B_AUTH, publicInfo: TPM2B_NV_PUBLIC },
});

/** TPM2_NV_UndefineSpace (Part 3 §31.4). */
export const NV_UndefineSpace = command("NV_UndefineSpace", TPM_CC.NV_UndefineSpace, {
  handles: { authHandle: "user", nvIndex: "none" },
});

/** TPM2_NV_ReadPublic (Part 3 §31.6). */
export const NV_ReadPublic = command("NV_ReadPublic", TPM_CC.NV_ReadPublic, {
  handles: { nvIndex: "none" },
  response: { params: { nvPublic: TPM2B_NV_PUBLIC, nvName: TPM2B_NAME } },
});

/** TPM2_NV_Write (Part 3 §31.7). */
export const NV_Write = command("NV_Write", TPM_CC.NV_Write, {
  handles: { authHandle: "user", nvIndex: "none" },
  params: { data: TPM2B_MAX_NV_BUFFER, offset: u16 },
});

/** TPM2_NV_Read (Part 3 §31.13). */
export const NV_Read = command("NV_Read", TPM_CC.NV_Read, {
  handles: { authHandle: "user", nvIndex: "none" },
  params: { size: u16, offset: u16 },
  response: { params: { data: TPM2B_MAX_NV_BUFFER } },
});

/** Every declared command, by command code. */
export const COMMANDS: ReadonlyMap<number, AnyCommand> = new Map(
  ([
    Startup,
    Shutdown,
    SelfTest,
    StartAuthSession,
    PolicyRestart,
    PolicySecret,
    PolicyOR,
    PolicyPCR,
    PolicyCommandCode,
    PolicyAuthValue,
    PolicyPassword,
    PolicyGetDigest,
    Create,
    Load,
    LoadExternal,
    ReadPublic,
    ActivateCredential,
    MakeCredential,
    CreatePrimary,
    Clear,
    HierarchyChangeAuth,
    DictionaryAttackLockReset,
    GetRandom,
    StirRandom,
    Hash,
    VerifySignature,
    Sign,
    Certify,
    Quote,
    PCR_Extend,
    PCR_Read,
    PCR_Reset,
    ContextSave,
    ContextLoad,
    FlushContext,
    EvictControl,
    ReadClock,
    GetCapability,
    TestParms,
    NV_DefineSpace,
    NV_UndefineSpace,
    NV_ReadPublic,
    NV_Write,
    NV_Read,
  ] as unknown as AnyCommand[]).map((c) => [c.code, c]),
);
