import { describe, expect, it } from 'vitest';
import { apiServerUrl, joinUrl, parseEndpoint } from './endpoint.js';

describe('control-plane endpoint', () => {
  it('accepts URLs, host:port and bare hosts, IPv6 included', () => {
    expect(parseEndpoint('https://10.0.0.1:6443')).toEqual({ host: '10.0.0.1', port: 6443 });
    expect(parseEndpoint('vip.shop.example')).toEqual({ host: 'vip.shop.example' });
    expect(parseEndpoint('[fd00::1]:6443')).toEqual({ host: 'fd00::1', port: 6443 });
    expect(apiServerUrl('fd00::1')).toBe('https://[fd00::1]:6443');
    expect(() => parseEndpoint('https://')).toThrow(/not a valid endpoint/);
  });

  it('derives join addresses: the server as given, else the endpoint host on the join port', () => {
    expect(joinUrl('https://10.0.0.1:6443', undefined, 9345)).toBe('https://10.0.0.1:9345');
    expect(joinUrl('https://10.0.0.1:443', undefined)).toBe('https://10.0.0.1:443');
    expect(joinUrl('https://10.0.0.1:6443', 'https://10.0.0.9:9345', 9345)).toBe('https://10.0.0.9:9345');
    expect(joinUrl('https://10.0.0.1:6443', '10.0.0.9', 9345)).toBe('https://10.0.0.9:9345');
  });
});
