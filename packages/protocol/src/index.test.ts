import { describe, expect, it } from 'vitest';
import { AgentMessage, buildOpenApi, findKind, KINDS, osImageRef, RegisterRequest, RegistrationTokenInput } from './index.js';

describe('protocol', () => {
  it('names an os image pinned by its digest once, whether or not the profile pinned the reference', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(osImageRef({ image: 'reg.local/os:1.0', digest })).toBe(`reg.local/os:1.0@${digest}`);
    expect(osImageRef({ image: `reg.local/os:1.0@${digest}`, digest })).toBe(`reg.local/os:1.0@${digest}`);
    // A reference pinned to another digest keeps both: the message shows the mismatch.
    expect(osImageRef({ image: `reg.local/os@sha256:${'b'.repeat(64)}`, digest })).toBe(`reg.local/os@sha256:${'b'.repeat(64)}@${digest}`);
  });

  it('finds kinds by kind, plural and short names', () => {
    expect(findKind('hosts')?.kind).toBe('EdgeHost');
    expect(findKind('EdgeHost')?.plural).toBe('edgehosts');
    expect(findKind('token')?.kind).toBe('RegistrationToken');
    expect(findKind('widgets')).toBeUndefined();
  });

  it('rejects unknown top-level keys and bad names in inputs', () => {
    expect(RegistrationTokenInput.safeParse({ metadata: { name: 'ok' }, spec: {} }).success).toBe(true);
    expect(RegistrationTokenInput.safeParse({ metadata: { name: 'Not_OK' }, spec: {} }).success).toBe(false);
    expect(RegistrationTokenInput.safeParse({ metadata: { name: 'ok' }, spec: {}, extra: 1 }).success).toBe(false);
    expect(RegistrationTokenInput.safeParse({ metadata: { name: 'ok' }, spec: { maxUses: 0 } }).success).toBe(false);
  });

  it('validates agent messages by type', () => {
    expect(AgentMessage.safeParse({ type: 'heartbeat', seq: 1 }).success).toBe(true);
    expect(AgentMessage.safeParse({ type: 'teleport' }).success).toBe(false);
    expect(RegisterRequest.safeParse({ token: 't' }).success).toBe(false);
  });

  it('generates an OpenAPI document with a path per kind', () => {
    const doc = buildOpenApi('test') as { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
    for (const k of KINDS) {
      expect(doc.paths[`/api/v1/${k.plural}`]).toBeDefined();
      expect(doc.components.schemas[k.kind]).toBeDefined();
    }
    expect(doc.paths['/agent/v1/register']).toBeDefined();
  });
});
