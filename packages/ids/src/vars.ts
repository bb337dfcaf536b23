/**
 * Rule variables from a file, in any of the forms a rules deployment already has:
 *
 *   Snort 2 (snort.conf):        ipvar HOME_NET [10.0.0.0/8]    portvar HTTP_PORTS [80,8080]    var X y
 *   Suricata (suricata.yaml):    vars: / address-groups: / port-groups: with `NAME: "value"` under them
 *   plain:                       NAME=value
 *
 * Comments (#) and blank lines are skipped; in YAML, only the entries under address-groups and port-groups
 * are read. Anything else is an error naming file and line.
 */

export class VarsFileError extends Error {
  override name = 'VarsFileError';
}

export function parseVarsFile(text: string, file = '<vars>'): Record<string, string> {
  const vars: Record<string, string> = {};
  let section = '';
  let sectionIndent = -1;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\s+#.*$/, '').replace(/^\s*#.*$/, '');
    if (!line.trim() || /^(%YAML|---|\.\.\.)/.test(line.trim())) return;
    const indent = line.length - line.trimStart().length;
    const t = line.trim();
    let m = /^(?:ipvar|portvar|var)\s+([A-Za-z_]\w*)\s+(.+)$/.exec(t);
    if (m) {
      vars[m[1]!] = m[2]!.trim();
      return;
    }
    m = /^([A-Za-z_]\w*)\s*=\s*(.+)$/.exec(t);
    if (m) {
      vars[m[1]!] = unquote(m[2]!.trim());
      return;
    }
    // YAML: a key with nothing after the colon opens a section
    m = /^([A-Za-z_][\w-]*)\s*:\s*$/.exec(t);
    if (m) {
      if (indent <= sectionIndent) section = '';
      if (m[1] === 'address-groups' || m[1] === 'port-groups') {
        section = m[1];
        sectionIndent = indent;
      }
      return;
    }
    m = /^([A-Za-z_]\w*)\s*:\s*(.+)$/.exec(t);
    if (m && section && indent > sectionIndent) {
      vars[m[1]!] = unquote(m[2]!.trim());
      return;
    }
    if (m) return; // a YAML setting outside the variable groups
    throw new VarsFileError(
      `${file}:${i + 1}: expected 'ipvar|portvar|var NAME VALUE', 'NAME=VALUE' or YAML address-groups/port-groups, got '${t.slice(0, 60)}'`,
    );
  });
  return vars;
}

function unquote(v: string): string {
  return (v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))
    ? v.slice(1, -1)
    : v;
}
