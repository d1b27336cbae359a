"""Microsoft Entra ID through Microsoft Graph: client credentials (msal), delta queries."""
