"""The REST (IEC 62676-2-2 / PSIA) client: how the recorders panel reaches PSIA/ISAPI devices."""
