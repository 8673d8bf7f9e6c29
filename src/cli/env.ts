// The environment variables tsnet reads, checked once at start so a typo
// ends tsnet with one line naming the variable rather than deep inside:
//
//   TSNET_LOG_LEVEL    default for --log-level (the drop-in's only way in)
//   TSNET_LOG_FORMAT   default for --log-format: text or json
//   TSNET_RESOLV_CONF  the drop-in's --resolv-conf (engines cannot pass it)
//   TSNET_TAP_ENGINE   stream (default) or poll: the TAP I/O engine
//
// TSNET_SANDBOX_NS and TSNET_TAP_{PRECREATED,NSENTER,CONFIGURED} are set by
// tsnet's own launchers (sandbox.sh, slirp4netns.sh) for the process they
// start; they are not for users and are not checked here.

import fs from 'node:fs';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../app/specs.js';

export class EnvError extends Error {}

export interface EnvSettings {
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  resolvConf?: string;
}

/** Reads and checks the variables above; throws EnvError with the first that is wrong. */
export function checkEnv(env: NodeJS.ProcessEnv = process.env): EnvSettings {
  const out: EnvSettings = {};
  const level = env.TSNET_LOG_LEVEL;
  if (level !== undefined && level !== '') {
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      throw new EnvError(`TSNET_LOG_LEVEL: ${JSON.stringify(level)} is not a log level (use one of ${LOG_LEVELS.join(', ')})`);
    }
    out.logLevel = level as LogLevel;
  }
  const format = env.TSNET_LOG_FORMAT;
  if (format !== undefined && format !== '') {
    if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new EnvError(`TSNET_LOG_FORMAT: ${JSON.stringify(format)} is not a log format (use text or json)`);
    out.logFormat = format as LogFormat;
  }
  const engine = env.TSNET_TAP_ENGINE;
  if (engine !== undefined && engine !== '' && engine !== 'stream' && engine !== 'poll') {
    throw new EnvError(`TSNET_TAP_ENGINE: ${JSON.stringify(engine)} is not a TAP engine (use stream or poll, or leave it unset)`);
  }
  const resolv = env.TSNET_RESOLV_CONF;
  if (resolv !== undefined && resolv !== '') {
    try {
      fs.accessSync(resolv, fs.constants.R_OK);
    } catch (e) {
      throw new EnvError(`TSNET_RESOLV_CONF: cannot read ${JSON.stringify(resolv)} (${(e as NodeJS.ErrnoException).code ?? 'error'}) (name a readable resolv.conf, or unset it for /etc/resolv.conf)`);
    }
    out.resolvConf = resolv;
  }
  return out;
}
