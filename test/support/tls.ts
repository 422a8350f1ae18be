import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  /** PEM of the test CA: what agents and the CLI are told to trust. */
  caFile: string;
  /** Server certificate for localhost, 127.0.0.1 and `extraIps`, signed by the CA, and its key. */
  certFile: string;
  keyFile: string;
}

/**
 * A throwaway CA and a server certificate for localhost/127.0.0.1 (plus `extraIps`, e.g. the address
 * a VM reaches the host at), made with openssl in `dir`.
 */
export function makeTestPki(dir: string, extraIps: string[] = []): TestPki {
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Edgeplane test CA');
  openssl('req', '-new', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  const ips = ['127.0.0.1', ...extraIps].map((ip) => `IP:${ip}`).join(',');
  writeFileSync(f('server.ext'), `subjectAltName=DNS:localhost,${ips}\nextendedKeyUsage=serverAuth\n`);
  openssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('server.ext'),
  );
  return { caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}
