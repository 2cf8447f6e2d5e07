-- In-memory catalogues (get-models' cached answer, src/catalogue/cache.ts) are dropped on every
-- change to models or themes, whoever makes it: one NOTIFY per statement, delivered at commit.
CREATE FUNCTION notify_catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('catalogue_changed', TG_TABLE_NAME);
  RETURN NULL;
END $$;

CREATE TRIGGER models_catalogue_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON models
  FOR EACH STATEMENT EXECUTE FUNCTION notify_catalogue_changed();
CREATE TRIGGER themes_catalogue_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON themes
  FOR EACH STATEMENT EXECUTE FUNCTION notify_catalogue_changed();
