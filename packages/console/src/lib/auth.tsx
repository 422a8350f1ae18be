import type { Whoami } from '@edgeplane/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useContext, useEffect, useMemo, useState } from 'react';
import { ApiError, api, tokenStore } from './api';
import { takeEarlyWhoami } from './early-reads';

interface Auth {
  token: string;
  me?: Whoami;
  /** Whether the role allows `<plural>:<verb>`: buttons the server would refuse are not shown. */
  can(plural: string, verb: string): boolean;
  login(token: string): Promise<void>;
  logout(): void;
}

const AuthContext = createContext<Auth | undefined>(undefined);

export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [token, setToken] = useState(tokenStore.get());
  const me = useQuery({
    queryKey: ['whoami', token],
    queryFn: () => takeEarlyWhoami<Whoami>(token) ?? api.whoami(token),
    enabled: !!token,
    staleTime: 60_000,
    retry: false,
  });
  // A token that stopped working (revoked, expired) sends the user back to the login page.
  const expired = me.error instanceof ApiError && me.error.status === 401;
  useEffect(() => {
    if (expired) {
      tokenStore.clear();
      setToken('');
    }
  }, [expired]);
  const value = useMemo<Auth>(() => {
    const perms = new Set(me.data?.permissions ?? []);
    return {
      token,
      me: me.data,
      can: (plural, verb) => perms.has(`${plural}:${verb}`),
      async login(t) {
        const who = await api.whoami(t); // throws ApiError for a bad token
        tokenStore.set(t);
        qc.setQueryData(['whoami', t], who);
        setToken(t);
      },
      logout() {
        tokenStore.clear();
        qc.clear();
        setToken('');
      },
    };
  }, [token, me.data, qc]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const a = useContext(AuthContext);
  if (!a) throw new Error('useAuth outside AuthProvider');
  return a;
}
