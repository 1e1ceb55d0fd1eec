-- An org's alert webhook (DESIGN.md section 15): notifications of its alarms and budgets go
-- there as well as to TOLLGATE_ALERT_WEBHOOK_URL. The URL is a bearer credential (a Slack
-- incoming webhook): the API returns its scheme and host only, logs and events never hold it.
ALTER TABLE orgs ADD COLUMN alert_webhook_url TEXT;
