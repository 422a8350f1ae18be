import { describe, expect, it } from 'vitest';
import { AgentEventMessage, AgentMessage, RegisterRequest } from './agent.js';
import { ClusterInput } from './cluster.js';
import { Timestamp } from './meta.js';
import { PairingStartRequest } from './pairing.js';
import { RegistrationTokenInput } from './registration-token.js';
import { CreateSessionRequest } from './remote-session.js';
import { findControlChars, findTooDeep, MAX_JSON_DEPTH, PlainString, SafeText } from './text.js';

const issuePaths = (r: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) => r.error?.issues.map((i) => i.path.join('.')) ?? [];

describe('text building blocks', () => {
  it('PlainString refuses every C0 control character and DEL; SafeText keeps tab, newline and CR', () => {
    for (let c = 0; c < 0x20; c++) expect(PlainString.safeParse(`a${String.fromCharCode(c)}b`).success).toBe(false);
    expect(PlainString.safeParse('a\u007fb').success).toBe(false);
    expect(PlainString.safeParse('plain ünïcode ✓').success).toBe(true);
    for (let c = 0; c < 0x20; c++) expect(SafeText.safeParse(`a${String.fromCharCode(c)}b`).success, `U+${c.toString(16)}`).toBe([9, 10, 13].includes(c));
    expect(SafeText.safeParse('a\u007fb').success).toBe(false);
    for (const lone of ['\ud800', 'a\udfffb', '\udfff\ud800']) {
      expect(PlainString.safeParse(lone).success).toBe(false);
      expect(SafeText.safeParse(lone).success).toBe(false);
    }
    expect(SafeText.safeParse('paired \ud83d\ude00').success).toBe(true);
  });

  it('findControlChars names the first bad string or key by path', () => {
    expect(findControlChars({ a: [1, 'ok', { b: 'x\u0000' }] })).toEqual(['a', 2, 'b']);
    expect(findControlChars({ 'k\n': 'v' })).toEqual(['k\n']);
    expect(findControlChars({ a: 'line\nline\t' })).toBeUndefined();
    expect(findControlChars({ a: 'line\n' }, { plain: true })).toEqual(['a']);
  });

  it('findTooDeep names the first object or array past the nesting limit, counting the root as one level', () => {
    const nest = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`);
    expect(findTooDeep(nest(MAX_JSON_DEPTH))).toBeUndefined();
    expect(findTooDeep(nest(MAX_JSON_DEPTH + 1))).toEqual(Array(MAX_JSON_DEPTH).fill(0));
    // The deep branch is found behind shallow siblings, by key and index, and a value thousands deep costs no deep recursion.
    expect(findTooDeep({ ok: [1, 'x', {}], deep: [null, nest(MAX_JSON_DEPTH - 1)] })).toEqual(['deep', 1, ...Array(MAX_JSON_DEPTH - 2).fill(0)]);
    expect(findTooDeep({ x: nest(100_000) })).toHaveLength(MAX_JSON_DEPTH);
    expect(findTooDeep('text')).toBeUndefined();
  });

  it('resource inputs, session, pairing and registration requests and agent events refuse control characters with the path', () => {
    const tok = RegistrationTokenInput.safeParse({ metadata: { name: 't', annotations: { a: 'x\u0000' } }, spec: { description: 'ok\n' } });
    expect(issuePaths(tok)).toContain('metadata.annotations.a');
    const desc = RegistrationTokenInput.safeParse({ metadata: { name: 't' }, spec: { description: 'ok\u0001' } });
    expect(issuePaths(desc)).toEqual(['spec.description']);
    const session = CreateSessionRequest.safeParse({ kind: 'shell', reason: 'fix\u0000it' });
    expect(issuePaths(session)).toEqual(['reason']);
    const device = {
      deviceUid: 'device-0001',
      publicKey: { kty: 'OKP', crv: 'Ed25519', x: 'a'.repeat(43) },
      proof: 'p',
      inventory: {
        hostname: 'h',
        machineId: 'm',
        cpu: { model: 'c', cores: 1, arch: 'x64' },
        memoryBytes: 1,
        disks: [],
        nics: [],
        os: { name: 'o', version: '1', kernel: 'k' },
      },
    };
    expect(issuePaths(PairingStartRequest.safeParse({ ...device, agentVersion: 'a\u0000b' }))).toEqual(['agentVersion']);
    expect(issuePaths(RegisterRequest.safeParse({ ...device, token: 't', agentVersion: 'v\u0000' }))).toEqual(['agentVersion']);
    expect(RegisterRequest.safeParse({ ...device, token: 't', agentVersion: 'v1' }).success).toBe(true);
    const event = { type: 'event', id: 'e1', eventType: 'Normal', reason: 'R', message: 'm', timestamp: '2030-01-01T00:00:00Z' };
    expect(AgentEventMessage.safeParse(event).success).toBe(true);
    expect(issuePaths(AgentMessage.safeParse({ ...event, id: 'e\u00001' }))).toEqual(['id']);
    expect(issuePaths(AgentMessage.safeParse({ ...event, message: 'x\u001b[31m' }))).toEqual(['message']);
  });

  it('integers that go to integer columns stop at 2^31-1; timestamps at 40 characters', () => {
    const cluster = (revision: number) =>
      ClusterInput.safeParse({ metadata: { name: 'c' }, spec: { profile: { name: 'p', revision }, nodes: [{ host: 'h', role: 'control-plane' }] } });
    expect(issuePaths(cluster(2 ** 31))).toContain('spec.profile.revision');
    expect(issuePaths(cluster(2 ** 31 - 1))).not.toContain('spec.profile.revision');
    expect(RegistrationTokenInput.safeParse({ metadata: { name: 't' }, spec: { maxUses: 2 ** 31 } }).success).toBe(false);
    expect(RegistrationTokenInput.safeParse({ metadata: { name: 't' }, spec: { maxUses: 2 ** 31 - 1 } }).success).toBe(true);
    expect(Timestamp.safeParse('2030-01-01T00:00:00.123456789+00:00').success).toBe(true);
    expect(Timestamp.safeParse('2030-01-01T00:00:00.123456789012345678901234567890+00:00').success).toBe(false);
  });
});
