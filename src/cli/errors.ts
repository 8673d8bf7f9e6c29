// tsnet's one error style on the command line:
//
//     tsnet: <flag or thing>: <what is wrong> (<how to fix>)
//
// with the offending value quoted once. commander's own messages ("error:
// option '-p, --publish <spec>' argument 'abc' is invalid. ...") are
// rewritten into it here, so a bad flag reads the same whether commander or
// one of our parsers caught it. Exit codes: 1 for attach, replay and doctor;
// 125 for `tsnet run`, whose own failures must not look like the workload's.

/** The long name of an option from commander's flags text ("-p, --publish <spec>" → "--publish"). */
function flagName(flags: string): string {
  const long = /--[\w-]+/.exec(flags);
  return long ? long[0] : (/-\w/.exec(flags)?.[0] ?? flags);
}

/**
 * commander's message (as it prints it) in tsnet's style. `command` is the
 * subcommand's name for the "see --help" hint. Messages it does not know
 * keep their text under the `tsnet:` prefix.
 */
export function commanderMessage(raw: string, command: string): string {
  const msg = raw.trim().replace(/^error: /, '');
  const help = `tsnet ${command ? `${command} ` : ''}--help`;
  let m: RegExpExecArray | null;
  if ((m = /^option '(.+?)' argument '([\s\S]*?)' is invalid\. ([\s\S]*)$/.exec(msg))) return `tsnet: ${flagName(m[1]!)}: ${m[3]}`;
  if ((m = /^option '.+?' value '[\s\S]*?' from env '(.+?)' is invalid\. ([\s\S]*)$/.exec(msg))) return `tsnet: ${m[1]}: ${m[2]}`;
  if ((m = /^command-argument value '([\s\S]*?)' is invalid for argument '(.+?)'\. ([\s\S]*)$/.exec(msg))) return `tsnet: <${m[2]}>: ${m[3]}`;
  if ((m = /^option '(.+?)' argument missing$/.exec(msg))) return `tsnet: ${flagName(m[1]!)}: needs a value (${help} shows its form)`;
  if ((m = /^unknown option '(.+?)'(?:\s*\(Did you mean (.+)\?\))?$/.exec(msg))) {
    return `tsnet: ${m[1]}: unknown option (${m[2] ? `did you mean ${m[2]}? ` : ''}${help} lists them)`;
  }
  if ((m = /^unknown command '(.+?)'(?:\s*\(Did you mean (.+)\?\))?$/.exec(msg))) {
    return `tsnet: ${m[1]}: unknown command (${m[2] ? `did you mean ${m[2]}? ` : ''}tsnet --help lists them)`;
  }
  if ((m = /^missing required argument '(.+?)'$/.exec(msg))) return `tsnet: <${m[1]}>: missing (${help} shows the usage)`;
  if ((m = /^too many arguments(?: for '(.+?)')?\. Expected (\d+) arguments? but got (\d+)\.$/.exec(msg))) {
    return `tsnet: ${m[1] ?? command}: too many arguments: expected at most ${m[2]}, got ${m[3]} (${help} shows the usage)`;
  }
  if ((m = /^option '(.+?)' cannot be used with option '(.+?)'$/.exec(msg))) return `tsnet: ${flagName(m[1]!)}: cannot be used with ${flagName(m[2]!)}`;
  return `tsnet: ${msg}`;
}
