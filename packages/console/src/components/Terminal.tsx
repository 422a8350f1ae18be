import type { OperatorClientMessage, OperatorServerMessage } from '@edgeplane/protocol';
import { useEffect, useRef, useState } from 'react';
import { XTERM_OPTIONS } from '../lib/xterm-options';

export type ShellState = { phase: 'connecting' } | { phase: 'open' } | { phase: 'ended'; message: string } | { phase: 'failed'; message: string };

const enc = new TextEncoder();
function toB64(s: string): string {
  let bin = '';
  for (const b of enc.encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}
function fromB64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * An xterm.js terminal attached to a remote session's operator WebSocket (JSON frames, base64 data;
 * see OperatorClientMessage in the protocol). xterm is loaded on demand, so it costs nothing to pages
 * that do not open a shell.
 */
export function Terminal({ url, onState, terminateRef }: { url: string; onState(s: ShellState): void; terminateRef?: { current?: () => void } }) {
  const box = useRef<HTMLDivElement>(null);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    let disposed = false;
    let cleanup = () => {};
    void (async () => {
      const [{ Terminal: XTerm }, { FitAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit'), import('@xterm/xterm/css/xterm.css')]);
      if (disposed || !box.current) return;
      const term = new XTerm({ ...XTERM_OPTIONS, cursorBlink: true, convertEol: false, scrollback: 5000 });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(box.current);
      fit.fit();
      const ws = new WebSocket(url);
      const send = (m: OperatorClientMessage) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m));
      let ended = false;
      ws.onopen = () => send({ type: 'resize', cols: term.cols, rows: term.rows });
      ws.onmessage = (ev) => {
        const m = JSON.parse(String(ev.data)) as OperatorServerMessage;
        if (m.type === 'opened') {
          onState({ phase: 'open' });
          setReady(true);
          term.focus();
        } else if (m.type === 'output') term.write(fromB64(m.data));
        else if (m.type === 'exit') {
          ended = true;
          onState({
            phase: 'ended',
            message: `Session ended (${m.reason}${m.code !== null ? `, exit code ${m.code}` : ''}${m.signal ? `, ${m.signal}` : ''}).`,
          });
        } else if (m.type === 'refused') {
          ended = true;
          onState({ phase: 'failed', message: `The host refused the session: ${m.reason}` });
        } else if (m.type === 'error') onState({ phase: 'failed', message: `${m.message} (${m.code})` });
      };
      ws.onclose = (ev) => {
        if (!ended) onState({ phase: 'ended', message: `Disconnected${ev.reason ? `: ${ev.reason}` : ''}.` });
      };
      const data = term.onData((d) => send({ type: 'input', data: toB64(d) }));
      const resize = term.onResize(({ cols, rows }) => send({ type: 'resize', cols, rows }));
      const onWindow = () => fit.fit();
      window.addEventListener('resize', onWindow);
      if (terminateRef) terminateRef.current = () => send({ type: 'terminate' });
      cleanup = () => {
        window.removeEventListener('resize', onWindow);
        data.dispose();
        resize.dispose();
        ws.close();
        term.dispose();
      };
    })().catch((err) => onState({ phase: 'failed', message: `The terminal could not start: ${(err as Error).message}` }));
    return () => {
      disposed = true;
      cleanup();
    };
  }, [url, onState, terminateRef]);
  return <div className={`term-box${ready ? ' ready' : ''}`} ref={box} data-testid="terminal" role="application" aria-label="Remote shell terminal" />;
}
