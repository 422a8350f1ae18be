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
 * Shows the agent's pairing codes on a terminal (`write`) and on the local pairing page; the page
 * starts with the first code and stops once the device is registered. Returns a function that
 * detaches and closes the page.
 */
export function attachPairingDisplay(agent: Agent, options: { write: (text: string) => void; page: PairingPageConfig; logger: Logger }): () => Promise<void> {
  let page: PairingPage | undefined;
  let starting: Promise<void> | undefined;
  const onPairing = (info: PairingInfo | undefined) => {
    if (info) void pairingBanner(info).then(options.write);
    else options.write('Pairing code claimed; completing registration.\n');
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
