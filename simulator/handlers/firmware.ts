/** The simulator's firmware version, reported as TPM_PT_FIRMWARE_VERSION_1/_2 and in every TPMS_ATTEST. */
export const FIRMWARE_VERSION = 0x20261122_00010000n;
export const FIRMWARE_VERSION_1 = Number(FIRMWARE_VERSION >> 32n);
export const FIRMWARE_VERSION_2 = Number(FIRMWARE_VERSION & 0xffff_ffffn);
