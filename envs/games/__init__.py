"""Two-player text games on OpenSpiel rules. Pure rules stay in OpenSpiel; these modules render and parse."""
