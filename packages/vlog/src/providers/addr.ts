/** Whether `a` is HOST:PORT as the providers connect to it: a host name or IPv4 address, a port 1-65535. */
export function isHostPort(a: string): boolean {
  const m = /^([A-Za-z0-9._-]+):(\d{1,5})$/.exec(a);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}
