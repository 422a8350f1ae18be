import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import qrcodeTerminal from 'qrcode-terminal';
import type { Agent } from '../agent.js';
import type { PairingPageConfig } from '../config.js';
import type { PairingInfo } from './pairing-flow.js';
import { PairingPage } from './pairing-page.js';

/** The pairing banner for a terminal: the code, the claim URL and a QR of it. */
export function pairingBanner(info: PairingInfo): Promise<string> {
  return new Promise((resolve) => {
    qrcodeTerminal.generate(info.claimUrl, { small: true }, (qr) => {
      resolve(
        `\nThis device is not registered yet. Pair it with the control plane:\n\n` +
          `  Pairing code: ${info.code}\n` +
          `  Claim it at:  ${info.claimUrl}\n` +
          `  or run:       edgeplane claim ${info.code} --site SITE --labels k=v\n` +
          `  Expires at:   ${info.expiresAt}\n\n${qr}\n`,
      );
    });
  });
}

/**
 * Consoles the pairing banner is also written to: EDGEPLANE_PAIRING_CONSOLES, comma-separated
 * device paths. Edgeplane OS sets /dev/tty0 (the screen) and /dev/ttyS0 (serial): a service's
 * /dev/console is only the last console= of the kernel command line.
 */
export function pairingConsoles(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.EDGEPLANE_PAIRING_CONSOLES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Writes `text` to a console device; a console that does not exist or refuses (no screen, no serial
 * port) is skipped. O_NOCTTY: a service must not make the console its controlling terminal.
 */
export async function writeToConsole(path: string, text: string): Promise<boolean> {
  try {
    const fh = await open(path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_APPEND);
    try {
      // A terminal in raw mode does not turn \n into \r\n: send both.
      await fh.write(text.replace(/\r?\n/g, '\r\n'));
    } finally {
      await fh.close();
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Shows the agent's pairing codes on a terminal (`write`), on every console in `consoles` (default
 * pairingConsoles()) and on the local pairing page; the page starts with the first code and stops
 * once the device is registered. Returns a function that detaches and closes the page.
 */
export function attachPairingDisplay(
  agent: Agent,
  options: { write: (text: string) => void; page: PairingPageConfig; logger: Logger; consoles?: string[] },
): () => Promise<void> {
  let page: PairingPage | undefined;
  let starting: Promise<void> | undefined;
  const consoles = options.consoles ?? pairingConsoles();
  const show = (text: string) => {
    options.write(text);
    for (const path of consoles) void writeToConsole(path, text);
  };
  const onPairing = (info: PairingInfo | undefined) => {
    if (info) void pairingBanner(info).then(show);
    else show('Pairing code claimed; completing registration.\n');
    if (options.page.enabled && !page) {
      page = new PairingPage({ port: options.page.port, listen: options.page.listen, logger: options.logger });
      starting = page.start().then(() => {
        if (page?.urls.length) options.write(`Pairing page: ${page.urls.join(' ')}\n`);
      });
    }
    page?.show(info);
  };
  const onRegistered = (reg: { hostName: string }) => {
    page?.registered(reg.hostName);
    // Leave the "registered" page up briefly so a technician watching it sees the result.
    const p = page;
    if (p) setTimeout(() => void p.close(), 30_000).unref();
  };
  agent.on('pairing', onPairing);
  agent.on('registered', onRegistered);
  return async () => {
    agent.off('pairing', onPairing);
    agent.off('registered', onRegistered);
    await starting;
    await page?.close();
  };
}
