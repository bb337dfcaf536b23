/**
 * The rule classifications (`classtype:`): each one's description and default priority, as Snort's and
 * Suricata's `classification.config` define them (`config classification: shortname,description,priority`;
 * the classes of Snort 2.9's file, which Snort 3 ships as `default_classifications`, then those Suricata's
 * adds). A rule's
 * `priority:` overrides its class's; alert_fast prints the description and eve JSON's `alert.category` is
 * it, as theirs do. A site's classification.config (`parseClassificationConfig`) adds classes or replaces
 * these (`classificationTable`); a rule naming a class in neither is refused, as Snort 3 refuses it.
 */
export interface Classification {
  /** The short name as the table or file defines it (rules may name it in any case). */
  name: string;
  description: string;
  priority: number;
}

const table: [string, string, number][] = [
  ['not-suspicious', 'Not Suspicious Traffic', 3],
  ['unknown', 'Unknown Traffic', 3],
  ['bad-unknown', 'Potentially Bad Traffic', 2],
  ['attempted-recon', 'Attempted Information Leak', 2],
  ['successful-recon-limited', 'Information Leak', 2],
  ['successful-recon-largescale', 'Large Scale Information Leak', 2],
  ['attempted-dos', 'Attempted Denial of Service', 2],
  ['successful-dos', 'Denial of Service', 2],
  ['attempted-user', 'Attempted User Privilege Gain', 1],
  ['unsuccessful-user', 'Unsuccessful User Privilege Gain', 1],
  ['successful-user', 'Successful User Privilege Gain', 1],
  ['attempted-admin', 'Attempted Administrator Privilege Gain', 1],
  ['successful-admin', 'Successful Administrator Privilege Gain', 1],
  ['rpc-portmap-decode', 'Decode of an RPC Query', 2],
  ['shellcode-detect', 'Executable code was detected', 1],
  ['string-detect', 'A suspicious string was detected', 3],
  ['suspicious-filename-detect', 'A suspicious filename was detected', 2],
  ['suspicious-login', 'An attempted login using a suspicious username was detected', 2],
  ['system-call-detect', 'A system call was detected', 2],
  ['tcp-connection', 'A TCP connection was detected', 4],
  ['trojan-activity', 'A Network Trojan was detected', 1],
  ['unusual-client-port-connection', 'A client was using an unusual port', 2],
  ['network-scan', 'Detection of a Network Scan', 3],
  ['denial-of-service', 'Detection of a Denial of Service Attack', 2],
  ['non-standard-protocol', 'Detection of a non-standard protocol or event', 2],
  ['protocol-command-decode', 'Generic Protocol Command Decode', 3],
  ['web-application-activity', 'access to a potentially vulnerable web application', 2],
  ['web-application-attack', 'Web Application Attack', 1],
  ['misc-activity', 'Misc activity', 3],
  ['misc-attack', 'Misc Attack', 2],
  ['icmp-event', 'Generic ICMP event', 3],
  ['inappropriate-content', 'Inappropriate Content was Detected', 1],
  ['policy-violation', 'Potential Corporate Privacy Violation', 1],
  ['default-login-attempt', 'Attempt to login by a default username and password', 2],
  // Snort 2.9's last four (its file spells sdf's description "Senstive Data")
  ['sdf', 'Sensitive Data', 2],
  ['file-format', 'Known malicious file or file based exploit', 1],
  ['malware-cnc', 'Known malware command and control traffic', 1],
  ['client-side-exploit', 'Known client side exploit attempt', 1],
  // Suricata's additions
  ['targeted-activity', 'Targeted Malicious Activity was Detected', 1],
  ['exploit-kit', 'Exploit Kit Activity Detected', 1],
  ['external-ip-check', 'Device Retrieving External IP Address Detected', 2],
  ['domain-c2', 'Domain Observed Used for C2 Detected', 1],
  ['pup-activity', 'Possibly Unwanted Program Detected', 2],
  ['credential-theft', 'Successful Credential Theft Detected', 1],
  ['social-engineering', 'Possible Social Engineering Attempted', 2],
  ['coin-mining', 'Crypto Currency Mining Activity Detected', 2],
  ['command-and-control', 'Malware Command and Control Activity Detected', 1],
];

/** The classifications by short name. */
export const classifications: ReadonlyMap<string, Classification> = new Map(
  table.map(([name, description, priority]) => [name, { name, description, priority }]),
);

/** One `config classification:` line of a classification.config: a class with its file and line. */
export interface ClassificationEntry {
  /** The short name as written (Snort and Suricata look a rule's `classtype:` up case-insensitively). */
  name: string;
  description: string;
  priority: number;
  file: string;
  line: number;
}

/** A classification.config line that cannot be read: the message names file:line and what is wrong. */
export class ClassificationConfigError extends Error {
  override name = 'ClassificationConfigError';
}

/** A class's priority at most (Snort 3's `priority` range is 1:max32; JSON and eve keep it an integer). */
export const classPriorityMax = 2 ** 31 - 1;

/**
 * Reads a classification.config (Snort 2.9's and Suricata's format):
 *
 *   # comment
 *   config classification: shortname,description,priority
 *
 * Blank lines and `#` comments are skipped, CRLF and whitespace around each part are taken. The priority is
 * after the last comma, so a description may hold commas (as Suricata's parser reads it). The short name is
 * a letter then letters, digits, `-` or `_` (Suricata's); the priority a whole number from 1. A name given
 * twice in one file is an error (Snort warns and keeps the first, Suricata keeps the last: neither is what
 * the author meant). Any other line is an error naming file:line.
 */
export function parseClassificationConfig(text: string, file = '<classification>'): ClassificationEntry[] {
  const out: ClassificationEntry[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const t = lines[i]!.trim();
    if (t === '' || t.startsWith('#')) continue;
    const fail = (m: string) => new ClassificationConfigError(`${file}:${line}: classification: ${m}`);
    const m = /^config\s+classification\s*:(.*)$/.exec(t);
    if (!m)
      throw fail(`expected 'config classification: NAME,DESCRIPTION,PRIORITY', got '${t.slice(0, 60)}'`);
    const body = m[1]!;
    const first = body.indexOf(',');
    const last = body.lastIndexOf(',');
    if (first < 0 || first === last)
      throw fail(`expected NAME,DESCRIPTION,PRIORITY (three parts), got '${body.trim().slice(0, 60)}'`);
    const name = body.slice(0, first).trim();
    const description = body.slice(first + 1, last).trim();
    const priorityText = body.slice(last + 1).trim();
    if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(name))
      throw fail(`bad name '${name}' (a letter, then letters, digits, '-' or '_')`);
    if (description === '') throw fail(`class '${name}' has an empty description`);
    const priority = /^\d{1,10}$/.test(priorityText) ? Number(priorityText) : Number.NaN;
    if (!(priority >= 1 && priority <= classPriorityMax))
      throw fail(`bad priority '${priorityText}' of class '${name}' (a whole number from 1)`);
    const key = name.toLowerCase();
    const had = seen.get(key);
    if (had !== undefined) throw fail(`class '${name}' is defined again (first at line ${had})`);
    seen.set(key, line);
    out.push({ name, description, priority, file, line });
  }
  return out;
}

/**
 * The classes a rule set may name: the built-in table, then `extra` in order (a class of a file replaces the
 * built-in one or an earlier file's of the same name), by lower-case short name.
 */
export function classificationTable(
  extra: readonly Pick<ClassificationEntry, 'name' | 'description' | 'priority'>[] = [],
): ReadonlyMap<string, Classification> {
  if (extra.length === 0) return classifications;
  const out = new Map(classifications);
  for (const c of extra)
    out.set(c.name.toLowerCase(), { name: c.name, description: c.description, priority: c.priority });
  return out;
}

/**
 * A classtype's description for output: `table`'s (the built-in classes, or `classificationTable`'s with a
 * classification.config's; names in any case), or the name itself for a class it does not hold.
 */
export function classDescription(
  classtype: string,
  table: ReadonlyMap<string, Classification> = classifications,
): string {
  return (table.get(classtype) ?? table.get(classtype.toLowerCase()))?.description ?? classtype;
}
