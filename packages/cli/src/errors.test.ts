import { describe, expect, it } from 'vitest';
import { ApiError } from './api-client.js';
import { formatApiError } from './errors.js';

describe('formatApiError', () => {
  it('prints a validation problem the message already names once, and lists the others', () => {
    const one = new ApiError(400, 'ValidationFailed', 'invalid request: spec.profile.revision: Invalid input: expected number, received undefined', {
      issues: [{ path: 'spec.profile.revision', message: 'Invalid input: expected number, received undefined' }],
    });
    expect(formatApiError(one)).toBe('Error (ValidationFailed): invalid request: spec.profile.revision: Invalid input: expected number, received undefined\n');
    const three = new ApiError(400, 'ValidationFailed', 'invalid request: spec.a: bad (and 2 more)', {
      issues: [
        { path: 'spec.a', message: 'bad' },
        { path: 'spec.b', message: 'worse' },
        { path: '', message: 'root problem' },
      ],
    });
    expect(formatApiError(three)).toBe('Error (ValidationFailed): invalid request: spec.a: bad (and 2 more)\n  spec.b: worse\n  (root): root problem\n');
  });
});
