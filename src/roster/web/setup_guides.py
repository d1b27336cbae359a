"""What a customer's IT admin does on the identity provider's side, in its own words and menus."""

from __future__ import annotations

ENTRA_STEPS = (
    "In the Microsoft Entra admin center, open Identity » Applications » App registrations and choose "
    "New registration. Name it (for example Roster directory sync), keep 'Accounts in this organizational "
    "directory only', and register it.",
    "On the app's Overview, copy the Directory (tenant) ID and the Application (client) ID.",
    "Open API permissions » Add a permission » Microsoft Graph » Application permissions and add "
    "User.Read.All, Group.Read.All and GroupMember.Read.All. Then choose 'Grant admin consent'.",
    "Open Certificates & secrets » Client secrets » New client secret, and copy its Value (shown once).",
    "Paste the tenant ID, the client ID and the secret below. Roster tests them before anything is synced.",
)

SCIM_GUIDES: dict[str, tuple[str, ...]] = {
    "okta": (
        "In the Okta Admin Console, open Applications » Applications » Create App Integration, choose "
        "SWA or SAML, then on the app's General tab enable provisioning (SCIM).",
        "Open Provisioning » Integration: paste the endpoint below as 'SCIM connector base URL', use "
        "'userName' as the unique identifier, and choose 'HTTP Header' authentication with the token below.",
        "Under Provisioning » To App, enable Create, Update and Deactivate Users; assign people and push "
        "groups on the Assignments and Push Groups tabs.",
    ),
    "entra": (
        "In the Microsoft Entra admin center, open Identity » Applications » Enterprise applications » "
        "New application » Create your own application (non-gallery).",
        "Open Provisioning, set Provisioning Mode to Automatic, and under Admin Credentials paste the "
        "endpoint below as 'Tenant URL' and the token as 'Secret Token'; choose Test Connection, then Save.",
        "Assign users and groups under Users and groups, then Start provisioning.",
    ),
    "onelogin": (
        "In OneLogin, open Applications » Add App » 'SCIM Provisioner with SAML (SCIM v2 Core)'.",
        "On the Configuration tab paste the endpoint below as 'SCIM Base URL' and the token as "
        "'SCIM Bearer Token'; enable the API connection.",
        "On the Provisioning tab enable provisioning; assign users under Users.",
    ),
    "jumpcloud": (
        "In the JumpCloud Admin Portal, open SSO Applications » Add New Application » Custom Application.",
        "Under Identity Management choose SCIM 2.0, paste the endpoint below as 'Base URL' and the token as "
        "'Token Key', then Test Connection and Activate.",
        "Bind user groups to the application to provision them.",
    ),
    "pingfederate": (
        "In PingFederate, open Applications » SP Connections and create a connection with Outbound "
        "Provisioning (SCIM).",
        "In the provisioning target, paste the endpoint below as the SCIM URL and use the token below as an "
        "OAuth 2 bearer token.",
        "Choose the source groups to provision and activate the channel.",
    ),
    "rippling": (
        "In Rippling, open App Shop » Custom App and create a SCIM app.",
        "Paste the endpoint below as the SCIM base URL and the token as the API token.",
        "Choose which employees and groups to provision, then enable the app.",
    ),
    "generic": (
        "In your identity provider's SCIM 2.0 provisioning settings, paste the endpoint below as the "
        "base URL.",
        "Send the token below as 'Authorization: Bearer <token>'.",
        "Assign users and groups; Roster shows the first request as soon as it arrives.",
    ),
}
