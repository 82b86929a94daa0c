-- Invites are rate-limited per inviting account (issue 16): count an account's recent invites
-- without scanning every organization's.
CREATE INDEX cloud_organization_invites_inviter_idx
    ON cloud_organization_invites (inviter_user_id, created_at);
