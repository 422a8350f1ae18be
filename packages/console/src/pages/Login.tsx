import { type FormEvent, useState } from 'react';
import { ErrorBox } from '../components/ui';
import { useAuth } from '../lib/auth';

export function Login() {
  const { login } = useAuth();
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await login(token.trim());
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login" id="main">
      <p className="brand">Edgeplane</p>
      <h1>Sign in</h1>
      <form onSubmit={submit} aria-describedby="login-help">
        <label htmlFor="token">API token</label>
        <input id="token" type="password" autoComplete="off" required value={token} onChange={(e) => setToken(e.target.value)} />
        <p id="login-help" className="muted">
          Paste an API token (<code>ept_…</code>). The first admin token is in the server's data directory (<code>admin-token</code>); an admin makes more on
          the API tokens page here or with <code>edgeplane apply -f</code> and an <code>ApiToken</code> manifest. It is kept only in this browser tab.
        </p>
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <ErrorBox error={error} title="Sign-in failed" />
    </main>
  );
}
