// What the command line (src/cli/) takes from the layers below the
// composition root: the parsers of what users type (forward and fault
// specs, log levels, namespace types) and the error classes a failed
// command is recognised by. The CLI imports these from here, so that only
// src/app/ reaches into both the socket layer (src/host/) and the platform
// (src/launcher/, native/).

export { parseFaultSpec, FaultSpecError } from '../host/fault.js';
export { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../host/log.js';
export { parsePublish, PublishSpecError, type ForwardSpec } from '../host/forward-spec.js';
export { PcapFormatError } from '../host/pcap.js';
export type { NetnsType } from '../launcher/target.js';
export { PrereqError } from '../launcher/errors.js';
