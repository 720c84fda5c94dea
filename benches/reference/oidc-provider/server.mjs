// The reference the benchmark compares the provider endpoints with: node's
// oidc-provider (OpenID certified, widely deployed), configured as its documentation
// shows for client_credentials, on this same machine in the same run. Its defaults are
// kept: one node process, opaque access tokens in the in-memory adapter (no database,
// no audit log) — the most favourable setting for it.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const secret = process.env.CLIENT_SECRET;
if (!port || !secret) {
  console.error('PORT and CLIENT_SECRET must be set');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'api',
  }],
  scopes: ['openid', 'api'],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
});
provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
